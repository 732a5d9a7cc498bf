// What a container's command line means on this host: volume mountPaths (not mounted here)
// become the pod's local volume directories, and the memcached exporter listens on and scrapes
// its own pod's address. Pure functions of their arguments.
package main

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// mountDirs maps each of a container's volume mountPaths to the local directory (or file, for a
// subPath) that holds that volume here.
func mountDirs(spec *corev1.Container, podDir string) map[string]string {
	out := map[string]string{}
	for _, m := range spec.VolumeMounts {
		mp := strings.TrimRight(m.MountPath, "/")
		if mp == "" {
			continue
		}
		out[mp] = filepath.Join(podDir, "volumes", m.Name, m.SubPath)
	}
	return out
}

// isPathByte: a byte that can continue a path in a command line.
func isPathByte(b byte) bool {
	return b == '/' || b == '.' || b == '-' || b == '_' ||
		(b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}

// rewriteMountPaths replaces every mountPath in s (a whole path or its prefix, wherever it
// stands: "-Y /etc/auth/file", "ssl_key=/etc/tls/tls.key,ssl_chain_cert=...", a shell script)
// with the volume's local directory, longest mountPath first. A mountPath that is only part of
// a longer name (/etc/tls in /etc/tls2 or /x/etc/tls) is left alone. It reports whether it
// replaced anything.
func rewriteMountPaths(s string, dirs map[string]string) (string, bool) {
	mps := make([]string, 0, len(dirs))
	for mp := range dirs {
		mps = append(mps, mp)
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	changed := false
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || !isPathByte(s[i-1]) {
			for _, mp := range mps {
				end := i + len(mp)
				if !strings.HasPrefix(s[i:], mp) || (end < len(s) && s[end] != '/' && isPathByte(s[end])) {
					continue
				}
				b.WriteString(dirs[mp])
				i, matched, changed = end, true, true
				break
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), changed
}

// exporterImage is the repository of the memcached exporter sidecar's image
// (quay.io/prometheus/memcached-exporter).
const exporterImage = "memcached-exporter"

// exporterArgs adapts memcached_exporter's flags (kingpin: --flag=value or --flag value) to a
// pod that shares this host's network: memcached listens on the pod IP here, not on the pod's
// loopback, so a loopback --memcached.address (the default localhost:11211) becomes the pod
// IP; and every exporter would listen on the same :9150, so --web.listen-address (default
// :9150, every interface) becomes the pod IP and port. With TLS on and no
// --memcached.tls.server-name, the exporter verifies the address's host name; the host the pod
// asked for is passed as the server name, so the certificate is checked as in a real pod.
func exporterArgs(args []string, podIP string) (out []string, notes []string) {
	var address, listen []string
	serverName, tlsOn := false, false
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		takesValue := name == "--memcached.address" || name == "--web.listen-address"
		if takesValue && !hasValue && i+1 < len(args) {
			value, hasValue = args[i+1], true
			i++
		}
		switch {
		case name == "--memcached.address" && hasValue:
			address = append(address, value)
		case name == "--web.listen-address" && hasValue:
			listen = append(listen, value)
		default:
			if name == "--memcached.tls.server-name" {
				serverName = true
			}
			if name == "--memcached.tls.enable" && (!hasValue || value == "true") {
				tlsOn = true
			}
			out = append(out, args[i])
		}
	}
	if len(address) == 0 {
		address = []string{"localhost:11211"}
	}
	addr := address[len(address)-1] // kingpin: the last one wins
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		notes = append(notes, fmt.Sprintf("exporter --memcached.address %q kept as is (not host:port)", addr))
	case host == "localhost" || host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback():
		notes = append(notes, fmt.Sprintf("exporter --memcached.address %s -> %s: memcached listens on the pod IP here, a pod's loopback is this host's", addr, net.JoinHostPort(podIP, port)))
		if tlsOn && !serverName && host != "" {
			out = append(out, "--memcached.tls.server-name="+host)
			notes = append(notes, fmt.Sprintf("exporter verifies the server name %q it would verify in a real pod", host))
		}
		addr = net.JoinHostPort(podIP, port)
	}
	out = append(out, "--memcached.address="+addr)
	if len(listen) == 0 {
		listen = []string{":9150"}
	}
	for _, l := range listen {
		lh, lp, err := net.SplitHostPort(l)
		if err != nil || lh == podIP {
			out = append(out, "--web.listen-address="+l)
			continue
		}
		notes = append(notes, fmt.Sprintf("exporter --web.listen-address %s -> %s: only the pod IP is this pod's here", l, net.JoinHostPort(podIP, lp)))
		out = append(out, "--web.listen-address="+net.JoinHostPort(podIP, lp))
	}
	return out, notes
}
