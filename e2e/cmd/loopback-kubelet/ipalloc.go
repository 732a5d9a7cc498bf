// Pod address allocation from a 127.x range. Thread-safe.
package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
)

type ipAllocator struct {
	mu    sync.Mutex
	base  uint32
	size  uint32
	next  uint32          // guarded by mu: offset tried next, so addresses are not reused soon
	inUse map[uint32]bool // guarded by mu
}

func newIPAllocator(cidr *net.IPNet) *ipAllocator {
	ones, bits := cidr.Mask.Size()
	return &ipAllocator{
		base:  binary.BigEndian.Uint32(cidr.IP.To4()),
		size:  uint32(1) << uint(bits-ones),
		next:  1,
		inUse: map[uint32]bool{},
	}
}

// allocate returns an address no live pod holds, skipping .0 and .255.
func (a *ipAllocator) allocate() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := uint32(0); i < a.size; i++ {
		off := (a.next + i) % a.size
		ip := a.base + off
		if b := ip & 0xff; b == 0 || b == 255 || a.inUse[ip] {
			continue
		}
		a.inUse[ip] = true
		a.next = off + 1
		var out [4]byte
		binary.BigEndian.PutUint32(out[:], ip)
		return net.IP(out[:]).String(), nil
	}
	return "", fmt.Errorf("pod address range exhausted")
}

// reserve marks an address (from a pod that already has one) as taken.
func (a *ipAllocator) reserve(s string) bool {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return false
	}
	v := binary.BigEndian.Uint32(ip)
	if v < a.base || v >= a.base+a.size {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inUse[v] {
		return false
	}
	a.inUse[v] = true
	return true
}

func (a *ipAllocator) release(s string) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return
	}
	a.mu.Lock()
	delete(a.inUse, binary.BigEndian.Uint32(ip))
	a.mu.Unlock()
}
