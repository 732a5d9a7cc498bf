package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The children's shapes, close to the C++ operator's (operator/src/memcached/desired_objects.cc)
// so that both write objects of the same kinds, count and size.

const (
	hashAnnotation = "memcached.operator.io/spec-hash"
	podIPEnv       = "POD_IP"
	memcachedUID   = 11211
)

func selectorLabels(cluster string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":        "memcached",
		"app.kubernetes.io/instance":    cluster,
		"memcached.operator.io/cluster": cluster,
	}
}

func commonLabels(cluster string) map[string]string {
	l := selectorLabels(cluster)
	l["app.kubernetes.io/managed-by"] = "reference-operator"
	return l
}

func configMapName(mc *MemcachedCluster) string {
	if mc.Spec.ClientConfig.ConfigMapName != "" {
		return mc.Spec.ClientConfig.ConfigMapName
	}
	return mc.Name + "-endpoints"
}

func port(mc *MemcachedCluster) int32 {
	if mc.Spec.Port != 0 {
		return mc.Spec.Port
	}
	return 11211
}

func replicas(mc *MemcachedCluster) int32 {
	if mc.Spec.Replicas != nil {
		return *mc.Spec.Replicas
	}
	return 3
}

func servicePorts(mc *MemcachedCluster) []corev1.ServicePort {
	p := port(mc)
	return []corev1.ServicePort{{Name: "memcached", Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP}}
}

func memcachedArgs(mc *MemcachedCluster) []string {
	m := mc.Spec.Memcached
	return []string{"-p", fmt.Sprint(port(mc)), "-U", "0", "-l", "$(" + podIPEnv + "),127.0.0.1",
		"-m", fmt.Sprint(orDefault(m.MemoryMB, 64)), "-c", fmt.Sprint(orDefault(m.MaxConnections, 1024)),
		"-t", fmt.Sprint(orDefault(m.Threads, 4)), "-I", orDefaultString(m.MaxItemSize, "1m")}
}

func orDefault(v, d int64) int64 {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultString(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func readinessCommand(mc *MemcachedCluster) []string {
	return []string{"bash", "-c", fmt.Sprintf(`exec 3<>/dev/tcp/"$%s"/%d && printf 'version\r\n' >&3 && `+
		`IFS= read -r -t 2 reply <&3 && [[ $reply == 'VERSION '* || $reply == 'ERROR Too many open connections'* ]]`,
		podIPEnv, port(mc))}
}

func podTemplate(mc *MemcachedCluster) corev1.PodTemplateSpec {
	mem := orDefault(mc.Spec.Memcached.MemoryMB, 64)
	memory := resource.MustParse(fmt.Sprintf("%dMi", mem+mem/8+32))
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	container := corev1.Container{
		Name:    "memcached",
		Image:   orDefaultString(mc.Spec.Image, "memcached:1.6.18"),
		Command: []string{"memcached"},
		Args:    memcachedArgs(mc),
		Ports:   []corev1.ContainerPort{{Name: "memcached", ContainerPort: port(mc), Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{{Name: podIPEnv, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIP"}}}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: readinessCommand(mc)}},
			PeriodSeconds: 5, TimeoutSeconds: 3, SuccessThreshold: 1, FailureThreshold: 2,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: memory},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: memory},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](memcachedUID),
			RunAsGroup:               ptr.To[int64](memcachedUID),
			SeccompProfile:           seccomp,
		},
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: commonLabels(mc.Name)},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{container},
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](memcachedUID),
				RunAsGroup: ptr.To[int64](memcachedUID), SeccompProfile: seccomp,
			},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(mc.Name)},
						TopologyKey:   "kubernetes.io/hostname",
					},
				}},
			}},
		},
	}
}

// specHash names a desired spec: the API server defaults many fields, so comparing the desired
// spec with the stored one would see a difference every time; comparing hashes does not.
func specHash(v any) string {
	b, _ := json.Marshal(v)
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%016x", h.Sum64())
}

// mutateStatefulSet brings sts to the desired state; replicas follow the cluster on their own
// (a scale is not a template change).
func mutateStatefulSet(mc *MemcachedCluster, sts *appsv1.StatefulSet) {
	sts.Labels = commonLabels(mc.Name)
	sts.Spec.Replicas = ptr.To(replicas(mc))
	tmpl := podTemplate(mc)
	strategy := appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}
	hash := specHash([]any{tmpl, strategy})
	if sts.CreationTimestamp.IsZero() {
		sts.Spec.ServiceName = mc.Name
		sts.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		sts.Spec.Selector = &metav1.LabelSelector{MatchLabels: selectorLabels(mc.Name)}
	}
	if sts.Annotations[hashAnnotation] != hash {
		sts.Annotations = map[string]string{hashAnnotation: hash}
		sts.Spec.Template = tmpl
		sts.Spec.UpdateStrategy = strategy
	}
}

func mutateService(mc *MemcachedCluster, svc *corev1.Service, headless bool) {
	svc.Labels = commonLabels(mc.Name)
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.Selector = selectorLabels(mc.Name)
	svc.Spec.Ports = servicePorts(mc)
	if headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		svc.Spec.PublishNotReadyAddresses = true
	}
}

func mutatePDB(mc *MemcachedCluster, pdb *policyv1.PodDisruptionBudget) {
	pdb.Labels = commonLabels(mc.Name)
	mu := intstr.FromInt32(max(mc.Spec.PodDisruptionBudget.MaxUnavailable, 1))
	pdb.Spec.MaxUnavailable = &mu
	pdb.Spec.Selector = &metav1.LabelSelector{MatchLabels: selectorLabels(mc.Name)}
}
