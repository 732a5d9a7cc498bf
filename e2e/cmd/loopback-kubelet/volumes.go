// Pod volumes: ConfigMap, Secret, projected (ConfigMap, Secret, downward API,
// service-account token) and downward API volumes are projected into
// <pod dir>/volumes/<name> with the kubelet's atomic ..data layout; emptyDir
// and anything else is a plain directory (hostPath: a symlink to the path).
// A change of a ConfigMap or Secret reaches the directory after the
// configured propagation delay, like the real kubelet's periodic sync.
// Owned by the pod worker's goroutine.
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"memcached-operator/e2e/internal/atomicwriter"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type saToken struct {
	token   string
	issued  time.Time
	expires time.Time
}

type volumeState struct {
	w       *podWorker
	ready   bool                 // every volume was set up once
	hashes  map[string]string    // volume -> hash of the payload on disk
	pending map[string]time.Time // volume -> when its changed payload is due
	tokens  map[string]*saToken  // volume/path -> token
}

func newVolumeState(w *podWorker) *volumeState {
	return &volumeState{w: w, hashes: map[string]string{}, pending: map[string]time.Time{}, tokens: map[string]*saToken{}}
}

func payloadHash(p map[string]atomicwriter.File) string {
	h := sha256.New()
	for _, k := range atomicwriter.Keys(p) {
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", k, p[k].Mode, len(p[k].Data))
		h.Write(p[k].Data)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func (v *volumeState) sync() error {
	w := v.w
	var firstErr error
	now := time.Now()
	for i := range w.pod.Spec.Volumes {
		vol := &w.pod.Spec.Volumes[i]
		dir := filepath.Join(w.dir, "volumes", vol.Name)
		if vol.ConfigMap == nil && vol.Secret == nil && vol.Projected == nil && vol.DownwardAPI == nil {
			if _, err := os.Lstat(dir); err != nil {
				_ = os.MkdirAll(filepath.Dir(dir), 0o755)
				if vol.HostPath != nil {
					_ = os.Symlink(vol.HostPath.Path, dir)
				} else {
					_ = os.MkdirAll(dir, 0o777)
				}
			}
			continue
		}
		payload, refreshed, err := v.payload(vol)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("volume %q: %v", vol.Name, err)
			}
			continue
		}
		h := payloadHash(payload)
		old, written := v.hashes[vol.Name]
		if old == h {
			delete(v.pending, vol.Name)
			continue
		}
		if written && v.ready && !refreshed {
			due, ok := v.pending[vol.Name]
			if !ok {
				v.pending[vol.Name] = now.Add(w.k.jitteredDelay())
				continue
			}
			if now.Before(due) {
				continue
			}
		}
		if _, err := atomicwriter.Write(dir, payload); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("volume %q: %v", vol.Name, err)
			}
			continue
		}
		v.hashes[vol.Name] = h
		delete(v.pending, vol.Name)
	}
	if firstErr == nil {
		v.ready = true
	}
	if v.ready {
		return nil // later errors keep the last good content, as the kubelet does
	}
	return firstErr
}

func fileMode(item *int32, def *int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item)
	}
	if def != nil {
		return os.FileMode(*def)
	}
	return 0o644
}

func addKeys(out map[string]atomicwriter.File, data map[string][]byte, items []corev1.KeyToPath, def *int32, optional bool) error {
	if len(items) == 0 {
		for k, d := range data {
			out[k] = atomicwriter.File{Data: d, Mode: fileMode(nil, def)}
		}
		return nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("key %q not found", it.Key)
		}
		out[it.Path] = atomicwriter.File{Data: d, Mode: fileMode(it.Mode, def)}
	}
	return nil
}

func (v *volumeState) configMapData(name string, optional bool) (map[string][]byte, error) {
	cm, err := v.w.k.configMaps.ConfigMaps(v.w.namespace).Get(name)
	if err != nil {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("configmap %q not found", name)
	}
	data := map[string][]byte{}
	for k, s := range cm.Data {
		data[k] = []byte(s)
	}
	for k, b := range cm.BinaryData {
		data[k] = b
	}
	return data, nil
}

func (v *volumeState) secretData(name string, optional bool) (map[string][]byte, error) {
	s, err := v.w.k.secrets.Secrets(v.w.namespace).Get(name)
	if err != nil {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return s.Data, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func (v *volumeState) payload(vol *corev1.Volume) (map[string]atomicwriter.File, bool, error) {
	out := map[string]atomicwriter.File{}
	refreshed := false
	switch {
	case vol.ConfigMap != nil:
		data, err := v.configMapData(vol.ConfigMap.Name, isTrue(vol.ConfigMap.Optional))
		if err != nil {
			return nil, false, err
		}
		return out, false, addKeys(out, data, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode, isTrue(vol.ConfigMap.Optional))
	case vol.Secret != nil:
		data, err := v.secretData(vol.Secret.SecretName, isTrue(vol.Secret.Optional))
		if err != nil {
			return nil, false, err
		}
		return out, false, addKeys(out, data, vol.Secret.Items, vol.Secret.DefaultMode, isTrue(vol.Secret.Optional))
	case vol.DownwardAPI != nil:
		return out, false, v.addDownward(out, vol.DownwardAPI.Items, vol.DownwardAPI.DefaultMode)
	case vol.Projected != nil:
		def := vol.Projected.DefaultMode
		for _, src := range vol.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				data, err := v.configMapData(src.ConfigMap.Name, isTrue(src.ConfigMap.Optional))
				if err == nil {
					err = addKeys(out, data, src.ConfigMap.Items, def, isTrue(src.ConfigMap.Optional))
				}
				if err != nil {
					return nil, false, err
				}
			case src.Secret != nil:
				data, err := v.secretData(src.Secret.Name, isTrue(src.Secret.Optional))
				if err == nil {
					err = addKeys(out, data, src.Secret.Items, def, isTrue(src.Secret.Optional))
				}
				if err != nil {
					return nil, false, err
				}
			case src.DownwardAPI != nil:
				if err := v.addDownward(out, src.DownwardAPI.Items, def); err != nil {
					return nil, false, err
				}
			case src.ServiceAccountToken != nil:
				tok, r, err := v.token(vol.Name, src.ServiceAccountToken)
				if err != nil {
					return nil, false, err
				}
				refreshed = refreshed || r
				out[src.ServiceAccountToken.Path] = atomicwriter.File{Data: []byte(tok), Mode: fileMode(nil, def)}
			}
		}
	}
	return out, refreshed, nil
}

func (v *volumeState) addDownward(out map[string]atomicwriter.File, items []corev1.DownwardAPIVolumeFile, def *int32) error {
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = v.w.fieldValue(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := v.w.pod.Spec.Containers[0]
			for _, cc := range v.w.pod.Spec.Containers {
				if cc.Name == it.ResourceFieldRef.ContainerName {
					c = cc
				}
			}
			val, err = resourceValue(&c, it.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		out[it.Path] = atomicwriter.File{Data: []byte(val), Mode: fileMode(it.Mode, def)}
	}
	return nil
}

// token returns a bound service-account token for the pod, requesting a new
// one when 80% of the current one's lifetime has passed.
func (v *volumeState) token(volName string, src *corev1.ServiceAccountTokenProjection) (string, bool, error) {
	w := v.w
	key := volName + "/" + src.Path
	t := v.tokens[key]
	now := time.Now()
	if t != nil && now.Before(t.issued.Add(t.expires.Sub(t.issued)*8/10)) {
		return t.token, false, nil
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.name, UID: w.uid},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	sa := w.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := w.k.client.CoreV1().ServiceAccounts(w.namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if t != nil {
			return t.token, false, nil // keep the old one until it can be renewed
		}
		return "", false, fmt.Errorf("token for serviceaccount %q: %v", sa, err)
	}
	v.tokens[key] = &saToken{token: res.Status.Token, issued: now, expires: res.Status.ExpirationTimestamp.Time}
	return res.Status.Token, t != nil, nil
}
