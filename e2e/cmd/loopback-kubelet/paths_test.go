package main

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRewriteMountPaths(t *testing.T) {
	spec := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "tls", MountPath: "/etc/memcached/tls/"},
		{Name: "auth", MountPath: "/etc/memcached/auth"},
		{Name: "one", MountPath: "/etc/memcached/auth/extra", SubPath: "file"},
	}}
	dirs := mountDirs(spec, "/state/pods/p")
	for in, want := range map[string]string{
		"ssl_chain_cert=/etc/memcached/tls/tls.crt,ssl_key=/etc/memcached/tls/tls.key": "ssl_chain_cert=/state/pods/p/volumes/tls/tls.crt,ssl_key=/state/pods/p/volumes/tls/tls.key",
		"/etc/memcached/auth/authfile":                      "/state/pods/p/volumes/auth/authfile",
		"/etc/memcached/auth":                               "/state/pods/p/volumes/auth",
		"/etc/memcached/auth/extra":                         "/state/pods/p/volumes/one/file",
		"cat '/etc/memcached/tls/ca.crt' >&2":               "cat '/state/pods/p/volumes/tls/ca.crt' >&2",
		"/etc/memcached/tls2/x":                             "/etc/memcached/tls2/x",
		"/opt/etc/memcached/tls/x":                          "/opt/etc/memcached/tls/x",
		"--memcached.tls.ca-file=/etc/memcached/tls/ca.crt": "--memcached.tls.ca-file=/state/pods/p/volumes/tls/ca.crt",
	} {
		got, changed := rewriteMountPaths(in, dirs)
		if got != want || changed != (in != want) {
			t.Errorf("rewriteMountPaths(%q) = %q, %v; want %q", in, got, changed, want)
		}
	}
}

func TestExporterArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{"--memcached.address=127.2.0.9:11211", "--web.listen-address=127.2.0.9:9150"}},
		{[]string{"--memcached.address", "localhost:11311", "--web.listen-address=:9151", "--log.level=debug"},
			[]string{"--log.level=debug", "--memcached.address=127.2.0.9:11311", "--web.listen-address=127.2.0.9:9151"}},
		{[]string{"--memcached.address=localhost:11211", "--memcached.tls.enable"},
			[]string{"--memcached.tls.enable", "--memcached.tls.server-name=localhost", "--memcached.address=127.2.0.9:11211", "--web.listen-address=127.2.0.9:9150"}},
		{[]string{"--memcached.address=m-0.m.ns.svc.cluster.local:11211", "--memcached.tls.enable", "--web.listen-address=127.2.0.9:9150"},
			[]string{"--memcached.tls.enable", "--memcached.address=m-0.m.ns.svc.cluster.local:11211", "--web.listen-address=127.2.0.9:9150"}},
		{[]string{"--memcached.address=127.0.0.1:11211", "--memcached.tls.enable", "--memcached.tls.server-name=m-0"},
			[]string{"--memcached.tls.enable", "--memcached.tls.server-name=m-0", "--memcached.address=127.2.0.9:11211", "--web.listen-address=127.2.0.9:9150"}},
	} {
		got, _ := exporterArgs(tc.in, "127.2.0.9")
		if !slices.Equal(got, tc.want) {
			t.Errorf("exporterArgs(%q) =\n  %q\nwant\n  %q", tc.in, got, tc.want)
		}
	}
}
