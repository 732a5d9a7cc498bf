package main

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The part of the MemcachedCluster API (crds/) the yardstick reads and writes. Fields it does
// not model are never sent back to the spec: it writes only the status subresource.

var groupVersion = schema.GroupVersion{Group: "memcached.operator.io", Version: "v1alpha1"}

type memcachedSettings struct {
	MemoryMB       int64  `json:"memoryMB,omitempty"`
	MaxConnections int64  `json:"maxConnections,omitempty"`
	Threads        int64  `json:"threads,omitempty"`
	MaxItemSize    string `json:"maxItemSize,omitempty"`
}

type pdbSettings struct {
	Enabled        *bool `json:"enabled,omitempty"`
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
}

type clientConfig struct {
	ConfigMapName string `json:"configMapName,omitempty"`
}

type clusterSpec struct {
	Replicas            *int32            `json:"replicas,omitempty"`
	Image               string            `json:"image,omitempty"`
	Port                int32             `json:"port,omitempty"`
	Memcached           memcachedSettings `json:"memcached,omitempty"`
	PodDisruptionBudget pdbSettings       `json:"podDisruptionBudget,omitempty"`
	ClientConfig        clientConfig      `json:"clientConfig,omitempty"`
}

type clusterStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Replicas           int32              `json:"replicas,omitempty"`
	ReadyReplicas      int32              `json:"readyReplicas,omitempty"`
	Selector           string             `json:"selector,omitempty"`
	ConfigVersion      int64              `json:"configVersion,omitempty"`
	ConfigMapName      string             `json:"configMapName,omitempty"`
	Phase              string             `json:"phase,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

// MemcachedCluster is the typed object the manager's cache and client hold.
type MemcachedCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              clusterSpec   `json:"spec,omitempty"`
	Status            clusterStatus `json:"status,omitempty"`
}

// MemcachedClusterList is the list type the cache's informer needs.
type MemcachedClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MemcachedCluster `json:"items"`
}

// Hand-written deep copies (what controller-gen would generate).

func (in *MemcachedCluster) DeepCopyInto(out *MemcachedCluster) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if in.Spec.Replicas != nil {
		r := *in.Spec.Replicas
		out.Spec.Replicas = &r
	}
	if in.Spec.PodDisruptionBudget.Enabled != nil {
		e := *in.Spec.PodDisruptionBudget.Enabled
		out.Spec.PodDisruptionBudget.Enabled = &e
	}
	if in.Status.Conditions != nil {
		out.Status.Conditions = make([]metav1.Condition, len(in.Status.Conditions))
		for i := range in.Status.Conditions {
			in.Status.Conditions[i].DeepCopyInto(&out.Status.Conditions[i])
		}
	}
}

func (in *MemcachedCluster) DeepCopy() *MemcachedCluster {
	out := new(MemcachedCluster)
	in.DeepCopyInto(out)
	return out
}

func (in *MemcachedCluster) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *MemcachedClusterList) DeepCopyObject() runtime.Object {
	out := new(MemcachedClusterList)
	*out = *in
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]MemcachedCluster, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

func addToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(groupVersion, &MemcachedCluster{}, &MemcachedClusterList{})
	metav1.AddToGroupVersion(s, groupVersion)
	return nil
}

// DeepCopyStatus copies the status, conditions included.
func (in *clusterStatus) DeepCopyStatus() *clusterStatus {
	out := *in
	if in.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(in.Conditions))
		for i := range in.Conditions {
			in.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
	return &out
}
