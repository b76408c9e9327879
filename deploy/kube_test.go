package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/all"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
)

// The types below are the part of the Kubernetes schema the manifests use,
// decoded with unknown fields as errors: a misspelt field
// (readOnlyRootFileSystem) fails the test instead of being silently
// ignored by the API server. Add a field here when a manifest needs it.

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
}

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	header `yaml:",inline"`
	Spec   struct {
		Replicas             *int     `yaml:"replicas"`
		RevisionHistoryLimit int      `yaml:"revisionHistoryLimit"`
		Selector             selector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      *int  `yaml:"runAsUser"`
		RunAsGroup     *int  `yaml:"runAsGroup"`
		FSGroup        *int  `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Affinity struct {
		PodAntiAffinity struct {
			Preferred []struct {
				Weight          int `yaml:"weight"`
				PodAffinityTerm struct {
					TopologyKey   string   `yaml:"topologyKey"`
					LabelSelector selector `yaml:"labelSelector"`
				} `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		EmptyDir *struct {
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
				Divisor  string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type service struct {
	header `yaml:",inline"`
	Spec   struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type secret struct {
	header     `yaml:",inline"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type configMap struct {
	header `yaml:",inline"`
	Data   map[string]string `yaml:"data"`
}

type serviceAccount struct {
	header                       `yaml:",inline"`
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
}

type pdb struct {
	header `yaml:",inline"`
	Spec   struct {
		MinAvailable any      `yaml:"minAvailable"`
		Selector     selector `yaml:"selector"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	header `yaml:",inline"`
	Spec   struct {
		Selector  selector `yaml:"selector"`
		Endpoints []struct {
			Port     string `yaml:"port"`
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
	} `yaml:"labels"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// manifests is every object in deploy/kubernetes, by kind.
type manifests struct {
	deployments     []deployment
	services        []service
	secrets         []secret
	configMaps      []configMap
	serviceAccounts []serviceAccount
	pdbs            []pdb
	serviceMonitors []serviceMonitor
	kustomization   *kustomization
	files           []string // manifest files, relative to deploy/kubernetes
}

// known maps apiVersion/kind to where a document is decoded.
func (m *manifests) decode(file string, doc *yaml.Node, h header) error {
	strict := func(out any) error {
		var buf bytes.Buffer
		if err := yaml.NewEncoder(&buf).Encode(doc); err != nil {
			return err
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		return dec.Decode(out)
	}
	switch h.APIVersion + " " + h.Kind {
	case "apps/v1 Deployment":
		var v deployment
		err := strict(&v)
		m.deployments = append(m.deployments, v)
		return err
	case "v1 Service":
		var v service
		err := strict(&v)
		m.services = append(m.services, v)
		return err
	case "v1 Secret":
		var v secret
		err := strict(&v)
		m.secrets = append(m.secrets, v)
		return err
	case "v1 ConfigMap":
		var v configMap
		err := strict(&v)
		m.configMaps = append(m.configMaps, v)
		return err
	case "v1 ServiceAccount":
		var v serviceAccount
		err := strict(&v)
		m.serviceAccounts = append(m.serviceAccounts, v)
		return err
	case "policy/v1 PodDisruptionBudget":
		var v pdb
		err := strict(&v)
		m.pdbs = append(m.pdbs, v)
		return err
	case "monitoring.coreos.com/v1 ServiceMonitor":
		var v serviceMonitor
		err := strict(&v)
		m.serviceMonitors = append(m.serviceMonitors, v)
		return err
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		var v kustomization
		err := strict(&v)
		m.kustomization = &v
		return err
	}
	return fmt.Errorf("unexpected apiVersion %q kind %q", h.APIVersion, h.Kind)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	err := filepath.WalkDir("kubernetes", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		rel, _ := filepath.Rel("kubernetes", path)
		m.files = append(m.files, filepath.ToSlash(rel))
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			var h header
			if err := doc.Decode(&h); err != nil {
				return fmt.Errorf("%s: document %d: %w", path, i, err)
			}
			if h.APIVersion == "" || h.Kind == "" {
				return fmt.Errorf("%s: document %d: apiVersion and kind are required", path, i)
			}
			if h.Kind != "Kustomization" && h.Metadata.Name == "" {
				return fmt.Errorf("%s: document %d: metadata.name is required", path, i)
			}
			if err := m.decode(rel, &doc, h); err != nil {
				return fmt.Errorf("%s: %s %s: %w", path, h.Kind, h.Metadata.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m.files)
	return m
}

func labelsMatch(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func portRef(p any) string { return fmt.Sprint(p) }

// TestKubernetesManifests checks the manifests' structure: two replicas with
// non-root, read-only containers, probes on /healthz and /readyz, a
// Service with http and metrics ports, and every Secret key and ConfigMap
// the Deployment refers to exists.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.secrets) != 1 || len(m.configMaps) != 1 {
		t.Fatalf("want one Deployment, Service, Secret and ConfigMap; got %d, %d, %d, %d", len(m.deployments), len(m.services), len(m.secrets), len(m.configMaps))
	}
	d, svc, sec, cm := m.deployments[0], m.services[0], m.secrets[0], m.configMaps[0]

	// Kustomization lists every manifest but itself and the optional ones.
	if m.kustomization == nil {
		t.Fatal("no kustomization.yaml")
	}
	var want []string
	for _, f := range m.files {
		if f != "kustomization.yaml" && !strings.HasPrefix(f, "optional/") {
			want = append(want, f)
		}
	}
	got := slices.Sorted(slices.Values(m.kustomization.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want %v", got, want)
	}

	// Deployment.
	spec := d.Spec
	if spec.Replicas == nil || *spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2 (leader election through the Redis lock)", spec.Replicas)
	}
	podLabels := spec.Template.Metadata.Labels
	if !labelsMatch(spec.Selector.MatchLabels, podLabels) {
		t.Errorf("selector %v does not select the pod labels %v", spec.Selector.MatchLabels, podLabels)
	}
	pod := spec.Template.Spec
	if pod.TerminationGracePeriodSeconds < 60 {
		t.Errorf("terminationGracePeriodSeconds %d: leave time for the action in flight", pod.TerminationGracePeriodSeconds)
	}
	if ps := pod.SecurityContext; ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("pod securityContext must set runAsNonRoot: true and a non-zero runAsUser")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the pod must not mount a service account token")
	}
	if pod.ServiceAccountName != "" && !slices.ContainsFunc(m.serviceAccounts, func(s serviceAccount) bool { return s.Metadata.Name == pod.ServiceAccountName }) {
		t.Errorf("service account %q is not in the manifests", pod.ServiceAccountName)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container: allowPrivilegeEscalation must be false")
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("container: capabilities must drop ALL")
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Error("container: runAsUser 0")
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("container resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, pr := range map[string]*probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != name {
			t.Errorf("want a probe on %s, got %+v", name, pr)
			continue
		}
		if _, ok := ports[portRef(pr.HTTPGet.Port)]; !ok {
			t.Errorf("probe %s port %v is not a named container port (%v)", name, pr.HTTPGet.Port, ports)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
		t.Error("liveness must not use /readyz: a failed run would restart the pod")
	}

	// Config: args point at the mounted ConfigMap key.
	if strings.Join(c.Args, " ") != "run --config /etc/dirsync/config.yaml" {
		t.Errorf("args %q", c.Args)
	}
	mounted := map[string]string{} // mount path → volume
	for _, vm := range c.VolumeMounts {
		mounted[vm.MountPath] = vm.Name
	}
	var cmName string
	for _, v := range pod.Volumes {
		if v.Name == mounted["/etc/dirsync"] && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName != cm.Metadata.Name {
		t.Errorf("/etc/dirsync is volume %q of ConfigMap %q, want ConfigMap %q", mounted["/etc/dirsync"], cmName, cm.Metadata.Name)
	}
	if _, ok := cm.Data["config.yaml"]; !ok {
		t.Fatal("ConfigMap has no config.yaml")
	}

	// Secrets: every reference exists; values are placeholders.
	keys := map[string]bool{}
	for k := range sec.StringData {
		keys[k] = true
	}
	for k := range sec.Data {
		keys[k] = true
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != sec.Metadata.Name || !keys[ref.Key] {
			t.Errorf("env %s: secret %q key %q is not in the Secret manifest", e.Name, ref.Name, ref.Key)
		}
	}
	for k, v := range sec.StringData {
		if v != "CHANGE-ME" {
			t.Errorf("Secret key %s holds %q: commit placeholders (CHANGE-ME) only", k, v)
		}
	}

	// Every ${VAR} in the config is set in the container.
	cfgText := cm.Data["config.yaml"]
	for _, mm := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`).FindAllStringSubmatch(cfgText, -1) {
		if !env[mm[1]] && mm[2] == "" {
			t.Errorf("config uses ${%s}, which the container's env does not set", mm[1])
		}
	}

	// Service: selects the pods; http and metrics ports reach the container.
	if !labelsMatch(svc.Spec.Selector, podLabels) {
		t.Errorf("service selector %v does not select the pod labels %v", svc.Spec.Selector, podLabels)
	}
	svcPorts := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = true
		tp := portRef(p.TargetPort)
		if _, ok := ports[tp]; !ok && !slices.Contains(mapValues(ports), atoi(tp)) {
			t.Errorf("service port %s targets %v, not a container port", p.Name, p.TargetPort)
		}
	}
	for _, name := range []string{"http", "metrics"} {
		if !svcPorts[name] {
			t.Errorf("service has no port named %s", name)
		}
	}
	for _, sm := range m.serviceMonitors {
		if !labelsMatch(sm.Spec.Selector.MatchLabels, svc.Metadata.Labels) {
			t.Errorf("ServiceMonitor %s does not select the Service", sm.Metadata.Name)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !svcPorts[ep.Port] || ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoint %+v: want port metrics, path /metrics", ep)
			}
		}
	}
	for _, p := range m.pdbs {
		if !labelsMatch(p.Spec.Selector.MatchLabels, podLabels) {
			t.Errorf("PodDisruptionBudget %s does not select the pods", p.Metadata.Name)
		}
	}

	// The config itself: it parses with the env the Secret provides, passes
	// Validate, uses Redis, and listens where the probes knock.
	for k := range keys {
		t.Setenv(k, "placeholder-"+strings.ToLower(k))
	}
	cfg, err := config.Parse(strings.NewReader(cfgText))
	if err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	if cfg.State.Backend != "redis" {
		t.Errorf("state.backend %q: two replicas need the shared redis backend", cfg.State.Backend)
	}
	if cfg.State.Redis.Password.IsZero() {
		t.Error("state.redis.password is not set from the Secret")
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil || (host != "0.0.0.0" && host != "" && host != "::") {
		t.Errorf("http.listen %q: must listen on all interfaces in a pod", cfg.HTTP.Listen)
	}
	if atoi(port) != ports["http"] {
		t.Errorf("http.listen port %s, container port http %d", port, ports["http"])
	}
	// Targets whose connector is registered decode their settings strictly.
	factories := all.Factories()
	for _, tc := range cfg.Targets {
		if _, ok := factories[tc.Type]; !ok {
			t.Logf("%s: type %s not registered in connector/all yet; settings not checked", tc.Path(), tc.Type)
			continue
		}
		if _, err := all.Build(tc, connector.Deps{Logger: zap.NewNop()}); err != nil {
			t.Errorf("ConfigMap config.yaml: %v", err)
		}
	}
}

func mapValues(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return -1
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// TestKubernetesStrictSchema: the strict decoding catches a misspelt field.
func TestKubernetesStrictSchema(t *testing.T) {
	var doc yaml.Node
	src := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          securityContext: {readOnlyRootFileSystem: true}\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var m manifests
	err := m.decode("x.yaml", &doc, header{APIVersion: "apps/v1", Kind: "Deployment"})
	if err == nil || !strings.Contains(err.Error(), "readOnlyRootFileSystem") {
		t.Errorf("decode = %v, want an error naming readOnlyRootFileSystem", err)
	}
}

// TestKustomizeBuild renders the kustomization with kubectl when it is
// installed (an optional cross-check; the structure test above runs
// everywhere).
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed (optional cross-check)")
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	for _, kind := range []string{"Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount", "PodDisruptionBudget"} {
		if !bytes.Contains(out, []byte("\nkind: "+kind+"\n")) {
			t.Errorf("kubectl kustomize output has no %s", kind)
		}
	}
}
