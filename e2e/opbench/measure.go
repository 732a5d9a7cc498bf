package opbench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// measure does one run: create the clusters, start the operator, cold start, idle sample,
// steady window and scales when asked, delete, stop; then the audit log's writes.
func (b *bench) measure(ctx context.Context, op operatorKind, r *Run, steady bool) error {
	names := clusterNames(r.N)
	if err := b.createClusters(ctx, r.Namespace, names, r.Replicas); err != nil {
		return fmt.Errorf("creating clusters: %w", err)
	}
	tr := newTracker()
	defer tr.close()
	tr.expect(names)
	tr.start(ctx, b.cs, b.dyn, r.Namespace)
	if !tr.waitFor(ctx, b.cfg.Timeout, func() bool { return len(tr.clusters) == r.N }) {
		return errors.New("the created clusters did not all show up")
	}
	cp0 := controlPlaneCPU(b.cfg.StateDir)
	p, err := startOperator(op, b.cfg.Kubeconfig, r.Namespace, r.Log)
	if err != nil {
		return err
	}
	defer p.stop()
	var windows []window
	err = b.coldStart(ctx, p, op, tr, r, names, &windows, cp0)
	if err == nil {
		err = b.idleAndSteady(ctx, p, op, r, steady, &windows)
	}
	if err == nil && r.N > 0 && r.N == b.cfg.ScaleAt && b.cfg.Scales > 0 {
		err = b.scales(ctx, p, tr, r, names)
	}
	if err == nil {
		err = b.deleteAll(ctx, p, tr, r, names)
	}
	p.stop()
	if aerr := auditWrites(b.cfg.AuditLog, op.UserAgent, r.Namespace, windows); err == nil {
		err = aerr
	}
	return err
}

func (b *bench) alive(p *operatorProc) error {
	if p.exited() {
		return fmt.Errorf("the operator exited (exit code %d)", p.cmd.ProcessState.ExitCode())
	}
	return nil
}

func (b *bench) coldStart(ctx context.Context, p *operatorProc, op operatorKind, tr *tracker, r *Run, names []string, windows *[]window, cp0 float64) error {
	var at time.Time
	ok := tr.waitFor(ctx, b.cfg.Timeout, func() bool {
		var done bool
		at, done = tr.allChildren()
		return done || p.exited()
	})
	if err := b.alive(p); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("not every child exists after %s", b.cfg.Timeout))
	}
	if r.N == 0 { // nothing to wait for: only the idle figures mean something
		at = p.started
	}
	s, _ := p.sample()
	r.ChildrenS, r.CPUChildrenS = at.Sub(p.started).Seconds(), s.CPUSeconds
	if cp1 := controlPlaneCPU(b.cfg.StateDir); cp0 >= 0 && cp1 >= 0 {
		r.ControlPlaneCPUChildrenS = cp1 - cp0
	}
	end := at
	ok = tr.waitFor(ctx, b.cfg.Timeout, func() bool {
		var done bool
		at, done = tr.allAvailable(len(names))
		return done || p.exited()
	})
	if err := b.alive(p); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("not every cluster is Available after %s", b.cfg.Timeout))
	}
	if r.N == 0 {
		at = p.started
	}
	s, _ = p.sample()
	reads, _ := p.scrape(op.Metric)
	r.AvailableS, r.CPUAvailableS, r.PeakRSSMB = at.Sub(p.started).Seconds(), s.CPUSeconds, s.PeakRSSMB
	r.ReadsColdStart = onlyReads(reads)
	// The cold start ends when every child exists and every cluster is Available, whichever
	// comes last (an operator may report Available before its last child exists).
	end = later(end, at)
	*windows = append(*windows, window{"cold start", p.started, end.Add(time.Millisecond), &r.WritesColdStart})
	b.logf("%s: N=%d children %.2f s, Available %.2f s, CPU %.2f s, peak RSS %.1f MB",
		op.Name, r.N, r.ChildrenS, r.AvailableS, r.CPUAvailableS, r.PeakRSSMB)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func onlyReads(r requests) requests {
	out := requests{}
	for k, v := range r {
		if isRead(k) {
			out[k] = v
		}
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *bench) idleAndSteady(ctx context.Context, p *operatorProc, op operatorKind, r *Run, steady bool, windows *[]window) error {
	idleAt := p.started.Add(b.cfg.Idle)
	if err := sleepCtx(ctx, time.Until(idleAt)); err != nil {
		return err
	}
	if err := b.alive(p); err != nil {
		return err
	}
	r.Idle, _ = p.sample()
	reads, _ := p.scrape(op.Metric)
	r.ReadsIdle = onlyReads(reads)
	*windows = append(*windows, window{"to idle", p.started, time.Now(), &r.WritesIdle})
	b.logf("%s: N=%d idle at %s: RSS %.1f MB, %d threads", op.Name, r.N, b.cfg.Idle, r.Idle.RSSMB, r.Idle.Threads)
	if !steady {
		return nil
	}
	from := time.Now()
	if err := sleepCtx(ctx, b.cfg.Steady); err != nil {
		return err
	}
	if err := b.alive(p); err != nil {
		return err
	}
	after, _ := p.scrape(op.Metric)
	to := time.Now()
	r.SteadyS = to.Sub(from).Seconds()
	r.ReadsSteady = onlyReads(after.minus(reads))
	*windows = append(*windows, window{"steady", from, to, &r.WritesSteady})
	return nil
}

// scales scales a few clusters up by one and back, round robin, and measures the operator's
// part: from the new pod's Ready (as seen by a watch) to the ConfigMap listing it, and from
// the scale-down's patch to the ConfigMap without it.
func (b *bench) scales(ctx context.Context, p *operatorProc, tr *tracker, r *Run, names []string) error {
	count := (b.cfg.Scales + b.cfg.Runs - 1) / b.cfg.Runs
	k := min(len(names), 3)
	for i := 0; i < count; i++ {
		c := names[i%k]
		pod := fmt.Sprintf("%s-%d", c, r.Replicas)
		member := pod + "." + c + "."
		listed := func(at time.Time, want bool) (time.Time, bool) {
			for _, ch := range tr.cms[c] {
				if !ch.at.Before(at) && strings.Contains(ch.servers, member) == want {
					return ch.at, true
				}
			}
			return time.Time{}, false
		}
		start := time.Now()
		if err := b.scaleCluster(ctx, r.Namespace, c, r.Replicas+1); err != nil {
			return err
		}
		var readyAt, cmAt time.Time
		ok := tr.waitFor(ctx, 2*time.Minute, func() bool {
			readyAt = tr.readyPod(pod, start)
			if readyAt.IsZero() {
				return p.exited()
			}
			var seen bool
			cmAt, seen = listed(start, true)
			return seen || p.exited()
		})
		if err := b.alive(p); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("scale-up %d of %s: %s not Ready and published within 2m", i+1, c, pod))
		}
		r.ScaleUpMS = append(r.ScaleUpMS, float64(cmAt.Sub(readyAt).Microseconds())/1000)
		start = time.Now()
		if err := b.scaleCluster(ctx, r.Namespace, c, r.Replicas); err != nil {
			return err
		}
		ok = tr.waitFor(ctx, 2*time.Minute, func() bool {
			var seen bool
			cmAt, seen = listed(start, false)
			return (seen && !tr.podExists(pod)) || p.exited()
		})
		if err := b.alive(p); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("scale-down %d of %s: %s still published or present after 2m", i+1, c, pod))
		}
		r.ScaleDownMS = append(r.ScaleDownMS, float64(cmAt.Sub(start).Microseconds())/1000)
	}
	b.logf("%s: N=%d %d scales each way: up p50 %.1f ms, down p50 %.1f ms", r.Operator, r.N, count,
		percentile(r.ScaleUpMS, 50), percentile(r.ScaleDownMS, 50))
	return nil
}

func (b *bench) deleteAll(ctx context.Context, p *operatorProc, tr *tracker, r *Run, names []string) error {
	start := time.Now()
	if err := b.deleteClusters(ctx, r.Namespace, names); err != nil {
		return err
	}
	var gone time.Time
	ok := tr.waitFor(ctx, b.cfg.Timeout, func() bool {
		if len(tr.children) == 0 && len(tr.clusters) == 0 {
			gone = time.Now()
			return true
		}
		return false
	})
	if !ok {
		return fmt.Errorf("children left %s after deleting every cluster", b.cfg.Timeout)
	}
	r.DeleteS = gone.Sub(start).Seconds()
	// Pods go after their StatefulSets; the next run must not share the machine with them.
	if !tr.waitFor(ctx, b.cfg.Timeout, func() bool { return len(tr.podName) == 0 }) {
		return fmt.Errorf("pods left %s after their StatefulSets were deleted", b.cfg.Timeout)
	}
	b.logf("%s: N=%d deleted, children gone in %.2f s", r.Operator, r.N, r.DeleteS)
	return nil
}
