// Startup, readiness and liveness probes of one container run. The probe
// goroutines only read immutable data and report through the pod worker's
// events channel.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func (c *container) startProbes(env []envVar) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancelProbes = cancel
	gen, name := c.gen, c.spec.Name
	spec := c.spec
	go func() {
		if p := spec.StartupProbe; p != nil {
			if !c.probeLoop(ctx, p, env, true, func(ok bool) bool {
				if ok {
					c.w.send(event{kind: evStarted, name: name, gen: gen})
				} else {
					c.w.send(event{kind: evLiveFail, name: name, gen: gen})
				}
				return false // the startup probe stops at its first verdict
			}) {
				return
			}
		}
		if p := spec.ReadinessProbe; p != nil {
			go c.probeLoop(ctx, p, env, false, func(ok bool) bool {
				c.w.send(event{kind: evReady, name: name, gen: gen, ok: ok})
				return true
			})
		}
		if p := spec.LivenessProbe; p != nil {
			go c.probeLoop(ctx, p, env, false, func(ok bool) bool {
				if !ok {
					c.w.send(event{kind: evLiveFail, name: name, gen: gen})
					return false
				}
				return true
			})
		}
	}()
}

// probeLoop runs p every periodSeconds and calls verdict when the success or
// failure threshold is crossed (or, with once, reached); it stops when
// verdict returns false. It returns whether the last verdict was a success.
func (c *container) probeLoop(ctx context.Context, p *corev1.Probe, env []envVar, once bool, verdict func(bool) bool) bool {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	succThreshold, failThreshold := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	// A freshly started process needs a moment to listen; the first probe
	// waits at least 100ms so it does not cost a whole period.
	first := max(time.Duration(p.InitialDelaySeconds)*time.Second, 100*time.Millisecond)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(first):
	}
	succ, fail := int32(0), int32(0)
	last := -1
	for {
		ok := c.probeOnce(ctx, p, env)
		if ctx.Err() != nil {
			return false
		}
		if ok {
			succ, fail = succ+1, 0
		} else {
			fail, succ = fail+1, 0
		}
		if ok && succ >= succThreshold && last != 1 {
			last = 1
			if !verdict(true) {
				return true
			}
		}
		if !ok && fail >= failThreshold && (last != 0 || once) {
			last = 0
			if !verdict(false) {
				return false
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(period):
		}
	}
}

func (c *container) resolvePort(port intstr.IntOrString) int {
	if port.Type == intstr.Int {
		return port.IntValue()
	}
	for _, p := range c.spec.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort)
		}
	}
	n, _ := strconv.Atoi(port.StrVal)
	return n
}

func (c *container) probeOnce(ctx context.Context, p *corev1.Probe, env []envVar) bool {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			return false
		}
		// Like the kubelet, expand $(VAR) in probe commands from static env only.
		var static []envVar
		for _, e := range c.spec.Env {
			if e.ValueFrom == nil {
				static = append(static, envVar{e.Name, e.Value})
			}
		}
		argv, _ := c.localArgs(expandAll(p.Exec.Command, static))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = envList(env), c.w.dir
		return cmd.Run() == nil
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = c.w.podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(c.resolvePort(p.TCPSocket.Port))))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	case p.HTTPGet != nil:
		return c.httpProbe(ctx, p.HTTPGet)
	case p.GRPC != nil:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.w.podIP, strconv.Itoa(int(p.GRPC.Port))))
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	return true
}

func (c *container) httpProbe(ctx context.Context, g *corev1.HTTPGetAction) bool {
	host := g.Host
	if host == "" {
		host = c.w.podIP
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(c.resolvePort(g.Port))), g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
