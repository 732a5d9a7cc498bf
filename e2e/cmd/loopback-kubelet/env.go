// A container's environment as the kubelet would build it (env, envFrom,
// fieldRef, resourceFieldRef, ConfigMap and Secret keys, $(VAR) expansion),
// plus what a process outside a container needs to reach the API server.
package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

type envVar struct{ name, value string }

const serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"

func (w *podWorker) containerEnv(spec *corev1.Container, operator bool) ([]envVar, error) {
	pod := w.pod
	vars := []envVar{
		{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		{"HOSTNAME", pod.Name},
		{"HOME", "/root"},
		// 10.96.0.1 is not routable here: in-cluster clients reach the real API server.
		{"KUBERNETES_SERVICE_HOST", w.k.cfg.apiserverHost},
		{"KUBERNETES_SERVICE_PORT", w.k.cfg.apiserverPort},
		{"KUBERNETES_SERVICE_PORT_HTTPS", w.k.cfg.apiserverPort},
	}
	set := func(name, value string) {
		for i := range vars {
			if vars[i].name == name {
				vars[i].value = value
				return
			}
		}
		vars = append(vars, envVar{name, value})
	}
	for _, from := range spec.EnvFrom {
		var data map[string]string
		optional := false
		switch {
		case from.ConfigMapRef != nil:
			optional = from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := w.k.configMaps.ConfigMaps(pod.Namespace).Get(from.ConfigMapRef.Name)
			if err != nil {
				if optional {
					continue
				}
				return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			data = cm.Data
		case from.SecretRef != nil:
			optional = from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := w.k.secrets.Secrets(pod.Namespace).Get(from.SecretRef.Name)
			if err != nil {
				if optional {
					continue
				}
				return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range spec.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, err := w.envValueFrom(spec, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %v", e.Name, err)
		}
		set(e.Name, v)
	}
	set("MCOP_E2E_CLUSTER", w.k.cfg.clusterMarker)
	set("MCOP_POD_DIR", w.dir)
	if operator {
		set("KUBERNETES_SERVICE_HOST", w.k.cfg.apiserverHost)
		set("KUBERNETES_SERVICE_PORT", w.k.cfg.apiserverPort)
		if dir := w.mountDir(spec, serviceAccountMountPath); dir != "" {
			set("MCOP_SERVICEACCOUNT_DIR", dir)
		}
	}
	return vars, nil
}

// mountDir is the local directory of the volume spec mounts at mountPath.
func (w *podWorker) mountDir(spec *corev1.Container, mountPath string) string {
	for _, m := range spec.VolumeMounts {
		if strings.TrimRight(m.MountPath, "/") == mountPath {
			return filepath.Join(w.dir, "volumes", m.Name, m.SubPath)
		}
	}
	return ""
}

func (w *podWorker) envValueFrom(spec *corev1.Container, src *corev1.EnvVarSource) (string, error) {
	pod := w.pod
	switch {
	case src.FieldRef != nil:
		return w.fieldValue(src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil:
		return resourceValue(spec, src.ResourceFieldRef)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := w.k.configMaps.ConfigMaps(pod.Namespace).Get(ref.Name)
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, nil
			}
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", fmt.Errorf("configmap %s key %s not found", ref.Name, ref.Key)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := w.k.secrets.Secrets(pod.Namespace).Get(ref.Name)
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), nil
			}
		}
		if ref.Optional != nil && *ref.Optional {
			return "", nil
		}
		return "", fmt.Errorf("secret %s key %s not found", ref.Name, ref.Key)
	}
	return "", nil
}

func (w *podWorker) fieldValue(path string) (string, error) {
	pod := w.pod
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	case "status.podIP", "status.podIPs":
		return w.podIP, nil
	}
	for _, p := range []struct {
		prefix string
		m      map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if path == p.prefix {
			var lines []string
			for k, v := range p.m {
				lines = append(lines, fmt.Sprintf("%s=%q", k, v))
			}
			return strings.Join(sorted(lines), "\n"), nil
		}
		if strings.HasPrefix(path, p.prefix+"['") && strings.HasSuffix(path, "']") {
			return p.m[path[len(p.prefix)+2:len(path)-2]], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

func resourceValue(spec *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	var q resource.Quantity
	name := ref.Resource
	switch {
	case strings.HasPrefix(name, "limits."):
		q = spec.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(name, "limits."))]
	case strings.HasPrefix(name, "requests."):
		q = spec.Resources.Requests[corev1.ResourceName(strings.TrimPrefix(name, "requests."))]
	default:
		return "", fmt.Errorf("unsupported resource %q", name)
	}
	if q.IsZero() && strings.HasPrefix(name, "limits.") {
		switch name {
		case "limits.cpu":
			q = *resource.NewQuantity(int64(numCPU()), resource.DecimalSI)
		case "limits.memory":
			q = *resource.NewQuantity(memTotal(), resource.BinarySI)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	v := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
	return fmt.Sprintf("%d", int64(v)), nil
}

func envList(vars []envVar) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		out = append(out, v.name+"="+v.value)
	}
	return out
}

func expandAll(args []string, vars []envVar) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, vars)
	}
	return out
}

// expand implements Kubernetes' $(VAR) expansion: defined variables are
// replaced, undefined references stay as written, and $$ escapes a $.
func expand(s string, vars []envVar) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			found := false
			for j := len(vars) - 1; j >= 0; j-- {
				if vars[j].name == name {
					b.WriteString(vars[j].value)
					found = true
					break
				}
			}
			if !found {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func numCPU() int { return runtimeNumCPU() }
