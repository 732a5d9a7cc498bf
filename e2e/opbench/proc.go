package opbench

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"memcached-operator/e2e/framework"
)

// operatorKind is one of the two operators under test.
type operatorKind struct {
	Name      string // "ours" or "reference"
	Binary    string
	UserAgent string // prefix of its User-Agent in the audit log
	Metric    string // its requests counter by verb and resource
}

// operatorProc is one running operator process (its own process group).
type operatorProc struct {
	cmd         *exec.Cmd
	metricsAddr string
	started     time.Time
	done        chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOperator(op operatorKind, kubeconfig, ns, logPath string) (*operatorProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"--kubeconfig", kubeconfig, "--namespace", ns, "--metrics-bind-address", addr}
	if op.Name == "ours" {
		args = append(args, "--health-probe-bind-address", "0")
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(op.Binary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &operatorProc{cmd: cmd, metricsAddr: addr, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *operatorProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the operator: SIGTERM to its group, SIGKILL after 15 s.
func (p *operatorProc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// procSample is what /proc says about the operator at one moment.
type procSample struct {
	CPUSeconds float64 `json:"cpu_s"`
	RSSMB      float64 `json:"rss_mb"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Threads    int     `json:"threads"`
}

// cpuSeconds is the user and system CPU a process has used so far.
func cpuSeconds(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// controlPlaneProcesses are the pid files, in an e2e/cluster state directory, of what serves
// the operators' requests and watches their objects.
var controlPlaneProcesses = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// controlPlaneCPU is the CPU seconds used so far by the control plane of the cluster whose state
// directory is dir; -1 when dir is "" or a process is not found (the figure is then left out).
func controlPlaneCPU(dir string) float64 {
	if dir == "" {
		return -1
	}
	var total float64
	for _, name := range controlPlaneProcesses {
		b, err := os.ReadFile(filepath.Join(dir, "run", name+".pid"))
		if err != nil {
			return -1
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return -1
		}
		s, err := cpuSeconds(pid)
		if err != nil {
			return -1
		}
		total += s
	}
	return total
}

func (p *operatorProc) sample() (procSample, error) {
	var s procSample
	pid := p.cmd.Process.Pid
	cpu, err := cpuSeconds(pid)
	if err != nil {
		return s, err
	}
	s.CPUSeconds = cpu
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseFloat(strings.Fields(v + " 0")[0], 64)
		switch k {
		case "VmRSS":
			s.RSSMB = n / 1024
		case "VmHWM":
			s.PeakRSSMB = n / 1024
		case "Threads":
			s.Threads = int(n)
		}
	}
	return s, nil
}

// requests are API request counts by "verb resource".
type requests map[string]float64

// scrape reads the operator's requests counter, summing over response codes.
func (p *operatorProc) scrape(metric string) (requests, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := requests{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len(metric)+1:], "} ")
		v, _ := strconv.ParseFloat(strings.TrimSpace(value), 64)
		out[label(labels, "verb")+" "+label(labels, "resource")] += v
	}
	return out, nil
}

func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// waitMetrics polls until the operator's /metrics answers (it listens a moment after start).
func (p *operatorProc) waitMetrics(metric string, timeout time.Duration) requests {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !p.exited() {
		if r, err := p.scrape(metric); err == nil {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	return requests{}
}

func (r requests) minus(base requests) requests {
	out := requests{}
	for k, v := range r {
		if d := v - base[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func isRead(verbResource string) bool {
	v, _, _ := strings.Cut(verbResource, " ")
	return v == "get" || v == "list" || v == "watch"
}

// split totals reads and writes.
func (r requests) split() (reads, writes float64) {
	for k, v := range r {
		if isRead(k) {
			reads += v
		} else {
			writes += v
		}
	}
	return reads, writes
}

// window is a time interval of a run whose audit-logged writes are counted.
type window struct {
	name       string
	from, to   time.Time
	countsInto *requests
}

// auditWrites counts, per window, the writes in namespace ns whose User-Agent starts with ua,
// by "verb resource[/subresource]"; it reads the rotated backups too.
func auditWrites(path, ua, ns string, windows []window) error {
	for _, w := range windows {
		*w.countsInto = requests{}
	}
	framework.ReadAuditLog(path, ua, func(a framework.AuditEvent) {
		if a.ObjectRef.Namespace != ns {
			return
		}
		key := a.Verb + " " + a.Resource()
		for _, w := range windows {
			if !a.Received.Before(w.from) && a.Received.Before(w.to) {
				(*w.countsInto)[key]++
			}
		}
	})
	return nil
}
