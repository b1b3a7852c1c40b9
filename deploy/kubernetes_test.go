package deploy

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/config"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

const (
	baseDir    = "kubernetes/base"
	exampleDir = "kubernetes/overlays/example"
	rs256Dir   = "kubernetes/overlays/rs256"
)

// The parts of Kubernetes objects the tests look at.
type (
	object struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Data       map[string]string `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	deployment struct {
		Spec struct {
			Replicas int `json:"replicas"`
			Strategy struct {
				RollingUpdate struct {
					MaxUnavailable any `json:"maxUnavailable"`
				} `json:"rollingUpdate"`
			} `json:"strategy"`
			Template struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec podSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds int `json:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   *bool `json:"runAsNonRoot"`
			SeccompProfile struct {
				Type string `json:"type"`
			} `json:"seccompProfile"`
		} `json:"securityContext"`
		TopologySpreadConstraints []any       `json:"topologySpreadConstraints"`
		Containers                []container `json:"containers"`
		Volumes                   []struct {
			Name   string `json:"name"`
			Secret *struct {
				SecretName string `json:"secretName"`
			} `json:"secret"`
		} `json:"volumes"`
	}
	container struct {
		Name  string `json:"name"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		Env []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		EnvFrom []struct {
			ConfigMapRef struct {
				Name string `json:"name"`
			} `json:"configMapRef"`
		} `json:"envFrom"`
		LivenessProbe  *probe `json:"livenessProbe"`
		ReadinessProbe *probe `json:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `json:"drop"`
			} `json:"capabilities"`
		} `json:"securityContext"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
			SubPath   string `json:"subPath"`
		} `json:"volumeMounts"`
	}
	probe struct {
		HTTPGet struct {
			Path string `json:"path"`
			Port string `json:"port"`
		} `json:"httpGet"`
	}
	k8sService struct {
		Spec struct {
			Selector map[string]string `json:"selector"`
			Ports    []struct {
				Name       string `json:"name"`
				Port       int    `json:"port"`
				TargetPort string `json:"targetPort"`
			} `json:"ports"`
		} `json:"spec"`
	}
)

// readYAML decodes the single document in file into v.
func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// exampleCallersFile returns the callers file of the example overlay.
func exampleCallersFile() (string, error) {
	b, err := os.ReadFile(filepath.Join(exampleDir, "secret-callers.yaml"))
	if err != nil {
		return "", err
	}
	var o object
	if err := yaml.Unmarshal(b, &o); err != nil {
		return "", err
	}
	return o.StringData["callers.yaml"], nil
}

// callersPlaceholder stands for a digest in the example callers file, so
// that the file as shipped names no working key.
const callersPlaceholder = "REPLACE_ME_with_the_sha256_of_the_booking_api_key"

// exampleCallersFileWithKey is the example callers file with the digest of
// exampleKey in place of the placeholder.
func exampleCallersFileWithKey() (string, error) {
	f, err := exampleCallersFile()
	if err != nil {
		return "", err
	}
	if !strings.Contains(f, callersPlaceholder) {
		return "", fmt.Errorf("the example callers file has no %s placeholder", callersPlaceholder)
	}
	return strings.ReplaceAll(f, callersPlaceholder, caller.HashKey([]byte(exampleKey))), nil
}

func TestExampleCallersFileNeedsARealDigest(t *testing.T) {
	f, err := exampleCallersFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Parse([]byte(f), caller.Defaults{MaxTTL: 24 * time.Hour}); err == nil {
		t.Error("the example callers file is accepted as shipped; it must not name a usable key")
	}
}

func baseDeployment(t *testing.T) (*deployment, *container) {
	t.Helper()
	var d deployment
	readYAML(t, filepath.Join(baseDir, "deployment.yaml"), &d)
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("deployment has %d containers; want 1", len(cs))
	}
	return &d, &cs[0]
}

// configMaps returns the settings of the base ConfigMap with the example
// overlay's patch applied.
func configMaps(t *testing.T) (base, patched map[string]string) {
	t.Helper()
	var b, o object
	readYAML(t, filepath.Join(baseDir, "configmap.yaml"), &b)
	readYAML(t, filepath.Join(exampleDir, "configmap.yaml"), &o)
	patched = map[string]string{}
	for k, v := range b.Data {
		patched[k] = v
	}
	for k, v := range o.Data {
		patched[k] = v
	}
	return b.Data, patched
}

func TestManifestsNameOnlyRealSettings(t *testing.T) {
	real := settings(t)
	check := func(where, name string) {
		if _, ok := real[name]; ok || goRuntimeVariables[name] {
			return
		}
		t.Errorf("%s sets %s, which is not a jitsi-signer setting", where, name)
	}
	base, _ := configMaps(t)
	var overlay object
	readYAML(t, filepath.Join(exampleDir, "configmap.yaml"), &overlay)
	for name := range base {
		check("base ConfigMap", name)
	}
	for name := range overlay.Data {
		check("example ConfigMap", name)
	}
	_, c := baseDeployment(t)
	for _, e := range c.Env {
		check("Deployment env", e.Name)
	}
	var rs object
	readYAML(t, filepath.Join(rs256Dir, "configmap.yaml"), &rs)
	for name := range rs.Data {
		check("rs256 ConfigMap", name)
	}
}

func TestManifestsLoadAsAConfiguration(t *testing.T) {
	// The example's settings, with the files the pod would have mounted,
	// must pass the service's own validation.
	_, cm := configMaps(t)
	_, c := baseDeployment(t)
	dir := t.TempDir()
	callers, err := exampleCallersFileWithKey()
	if err != nil {
		t.Fatal(err)
	}
	var key object
	readYAML(t, filepath.Join(exampleDir, "secret-signing-key.yaml"), &key)
	files := map[string]string{
		"/etc/jitsi-signer/callers/callers.yaml": callers,
		"/etc/jitsi-signer/signing-key/api-key":  key.StringData["api-key"],
	}
	for k, v := range cm {
		t.Setenv(k, v)
	}
	for _, e := range c.Env {
		if goRuntimeVariables[e.Name] {
			continue
		}
		v := e.Value
		if content, ok := files[v]; ok {
			v = filepath.Join(dir, path.Base(e.Value))
			if err := os.WriteFile(v, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv(e.Name, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatalf("the example configuration is invalid: %v", err)
	}
	if _, err := caller.Parse([]byte(callers), cfg.CallerDefaults()); err != nil {
		t.Errorf("the example callers file is invalid: %v", err)
	}
	if !cfg.Signed() || cfg.SigningAlg != "HS256" {
		t.Errorf("the example configuration signs = %v with %s; want HS256-signed links", cfg.Signed(), cfg.SigningAlg)
	}
	if _, err := jitsi.NewHMACSigner(cfg.SigningAlg, cfg.Secret, cfg.KeyID); err != nil {
		t.Errorf("the example key: %v", err)
	}
}

func TestSecretFilesAreMountedAsDirectories(t *testing.T) {
	d, c := baseDeployment(t)
	secrets := map[string]string{} // volume name → secret name
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	overlaySecrets := map[string]map[string]string{}
	for _, f := range []string{"secret-signing-key.yaml", "secret-callers.yaml"} {
		var o object
		readYAML(t, filepath.Join(exampleDir, f), &o)
		overlaySecrets[o.Metadata.Name] = o.StringData
	}
	for _, name := range []string{"JITSI_API_KEY_FILE", "SIGNER_CALLERS_FILE"} {
		var file string
		for _, e := range c.Env {
			if e.Name == name {
				file = e.Value
			}
		}
		if file == "" {
			t.Errorf("Deployment does not set %s", name)
			continue
		}
		found := false
		for _, m := range c.VolumeMounts {
			if path.Dir(file) != path.Clean(m.MountPath) {
				continue
			}
			found = true
			if m.SubPath != "" {
				t.Errorf("%s is mounted with subPath %q; a subPath mount never sees an updated Secret", name, m.SubPath)
			}
			secret, ok := secrets[m.Name]
			if !ok {
				t.Errorf("%s is on volume %s, which is not a Secret", name, m.Name)
				continue
			}
			data, ok := overlaySecrets[secret]
			if !ok {
				t.Errorf("the example overlay has no Secret %s for %s", secret, name)
				continue
			}
			if _, ok := data[path.Base(file)]; !ok {
				t.Errorf("Secret %s has no key %s, the file %s names", secret, path.Base(file), name)
			}
		}
		if !found {
			t.Errorf("%s=%s is not in a mounted directory", name, file)
		}
	}
}

// listenerPort returns the port an address setting takes in the pod.
func listenerPort(t *testing.T, cm map[string]string, name string) string {
	t.Helper()
	addr, ok := cm[name]
	if !ok {
		t.Fatalf("ConfigMap does not set %s: the default listens on loopback, unreachable in a pod", name)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, addr, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("%s=%q listens on %s only; a pod must listen on every interface", name, addr, host)
	}
	return port
}

func TestPortsAndProbesMatchTheListeners(t *testing.T) {
	_, cm := configMaps(t)
	d, c := baseDeployment(t)
	want := map[string]string{ // container port name → port
		"api":   listenerPort(t, cm, "SIGNER_ADDR"),
		"admin": listenerPort(t, cm, "SIGNER_ADMIN_ADDR"),
	}
	if want["api"] != defaultPort(t, "SIGNER_ADDR") || want["admin"] != defaultPort(t, "SIGNER_ADMIN_ADDR") {
		t.Errorf("ConfigMap ports %v differ from the defaults %s and %s", want, defaultPort(t, "SIGNER_ADDR"), defaultPort(t, "SIGNER_ADMIN_ADDR"))
	}
	got := map[string]string{}
	for _, p := range c.Ports {
		got[p.Name] = itoa(p.ContainerPort)
	}
	if len(got) != len(want) || got["api"] != want["api"] || got["admin"] != want["admin"] {
		t.Errorf("container ports = %v; want %v", got, want)
	}

	s := runningService(t)
	for _, p := range []struct {
		name  string
		probe *probe
	}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
		if p.probe == nil {
			t.Errorf("no %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Port != "admin" {
			t.Errorf("%s probe port = %q; want admin", p.name, p.probe.HTTPGet.Port)
		}
		if code, _, err := get(s.admin + p.probe.HTTPGet.Path); err != nil || code != 200 {
			t.Errorf("GET %s on the admin listener = %d, %v; want 200", p.probe.HTTPGet.Path, code, err)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("liveness must probe /healthz (the process lives) and readiness /readyz (it turns 503 at shutdown)")
	}

	// Services target the container's ports by name, the API and the admin
	// listener apart.
	labels := d.Spec.Template.Metadata.Labels
	for file, port := range map[string]string{"service-api.yaml": "api", "service-admin.yaml": "admin"} {
		var svc k8sService
		readYAML(t, filepath.Join(baseDir, file), &svc)
		if !selects(svc.Spec.Selector, labels) {
			t.Errorf("%s selector %v does not select the pods %v", file, svc.Spec.Selector, labels)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != port || itoa(svc.Spec.Ports[0].Port) != want[port] {
			t.Errorf("%s ports = %+v; want only %s (%s)", file, svc.Spec.Ports, port, want[port])
		}
	}

	var sm struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(baseDir, "servicemonitor.yaml"), &sm)
	var api, admin object
	readYAML(t, filepath.Join(baseDir, "service-api.yaml"), &api)
	readYAML(t, filepath.Join(baseDir, "service-admin.yaml"), &admin)
	if !selects(sm.Spec.Selector.MatchLabels, admin.Metadata.Labels) || selects(sm.Spec.Selector.MatchLabels, api.Metadata.Labels) {
		t.Errorf("ServiceMonitor selector %v must select the admin Service %v and not the API Service %v", sm.Spec.Selector.MatchLabels, admin.Metadata.Labels, api.Metadata.Labels)
	}
	for _, e := range sm.Spec.Endpoints {
		if e.Port != "admin" {
			t.Errorf("ServiceMonitor scrapes port %q; want admin", e.Port)
		}
		if code, _, err := get(s.admin + e.Path); err != nil || code != 200 {
			t.Errorf("GET %s on the admin listener = %d, %v; want 200", e.Path, code, err)
		}
	}

	var np struct {
		Spec struct {
			Ingress []struct {
				Ports []struct {
					Port string `json:"port"`
				} `json:"ports"`
			} `json:"ingress"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(baseDir, "networkpolicy.yaml"), &np)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if _, ok := want[p.Port]; !ok {
				t.Errorf("NetworkPolicy opens port %q, which the container does not name", p.Port)
			}
		}
	}
}

func TestShutdownFitsTheGracePeriod(t *testing.T) {
	_, cm := configMaps(t)
	d, _ := baseDeployment(t)
	real := settings(t)
	bound := time.Duration(0)
	for _, name := range []string{"SIGNER_SHUTDOWN_DELAY", "SIGNER_SHUTDOWN_TIMEOUT"} {
		v, ok := cm[name]
		if !ok {
			v = real[name].def
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		bound += dur
	}
	const margin = 5 * time.Second
	grace := time.Duration(d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace < bound+margin {
		t.Errorf("terminationGracePeriodSeconds = %s; shutdown may take %s, so want at least %s", grace, bound, bound+margin)
	}
}

func TestDeploymentIsHardenedAndAvailable(t *testing.T) {
	d, c := baseDeployment(t)
	pod := d.Spec.Template.Spec
	if d.Spec.Replicas < 2 {
		t.Errorf("replicas = %d; want at least 2", d.Spec.Replicas)
	}
	if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable; mu != float64(0) && mu != "0%" {
		t.Errorf("rollingUpdate.maxUnavailable = %v; want 0", mu)
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext must set runAsNonRoot and seccomp RuntimeDefault")
	}
	sc := c.SecurityContext
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !isTrue(sc.ReadOnlyRootFilesystem) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext = %+v; want no privilege escalation, a read-only root and ALL capabilities dropped", sc)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("resources for %s: requests %q, limits %q; want both", r, c.Resources.Requests[r], c.Resources.Limits[r])
		}
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Errorf("no topologySpreadConstraints")
	}

	var hpa struct {
		Spec struct {
			ScaleTargetRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			MinReplicas int `json:"minReplicas"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(baseDir, "hpa.yaml"), &hpa)
	var dep object
	readYAML(t, filepath.Join(baseDir, "deployment.yaml"), &dep)
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Metadata.Name || hpa.Spec.MinReplicas < 2 {
		t.Errorf("HPA targets %+v from %d replicas; want Deployment %s from at least 2", hpa.Spec.ScaleTargetRef, hpa.Spec.MinReplicas, dep.Metadata.Name)
	}
	var pdb struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(baseDir, "pdb.yaml"), &pdb)
	if !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// loadConfig validates the environment as the service does at start-up.
func loadConfig() (*config.Config, error) { return config.Load() }

// selects reports whether a non-empty selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
