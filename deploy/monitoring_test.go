package deploy

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite monitoring/prometheusrule.yaml from monitoring/rules.yaml")

const (
	rulesFile          = "monitoring/rules.yaml"
	prometheusRuleFile = "monitoring/prometheusrule.yaml"
	dashboardFile      = "monitoring/dashboards/jitsi-signer.json"
)

// prometheusRule renders the plain rule file as a PrometheusRule: its
// groups, verbatim, under spec.
func prometheusRule(rules []byte) []byte {
	var b strings.Builder
	b.WriteString(`# Generated from rules.yaml by "go test ./deploy -update"; edit rules.yaml.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: jitsi-signer
  labels:
    app.kubernetes.io/name: jitsi-signer
spec:
`)
	body := string(rules)
	body = body[strings.Index(body, "\ngroups:")+1:]
	for _, line := range strings.SplitAfter(body, "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(strings.TrimLeft(line, " \t"))
			continue
		}
		b.WriteString("  " + line)
	}
	return []byte(b.String())
}

func TestPrometheusRuleIsGeneratedFromRules(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := prometheusRule(rules)
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is not generated from %s; run: go test ./deploy -run PrometheusRule -update", prometheusRuleFile, rulesFile)
	}
	// And it says the same once parsed.
	var plain struct {
		Groups any `json:"groups"`
	}
	var crd struct {
		Spec struct {
			Groups any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(rules, &plain); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(got, &crd); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(plain.Groups)
	b, _ := json.Marshal(crd.Spec.Groups)
	if string(a) != string(b) || plain.Groups == nil {
		t.Errorf("the PrometheusRule's groups differ from %s once parsed", rulesFile)
	}
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return f
}

func TestAlertsCarryRunbooks(t *testing.T) {
	f := readRules(t)
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity label", r.Alert)
			}
			if !strings.Contains(r.Expr, `job="jitsi-signer"`) {
				t.Errorf("alert %s does not select job=\"jitsi-signer\"", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
}

// dashboardExprs returns every query in the dashboard: panel targets
// (rows included) and template variable queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", dashboardFile, err)
			}
			for _, target := range p.Targets {
				if target.Expr == "" {
					t.Errorf("panel %q has a target without expr", p.Title)
				}
				exprs = append(exprs, target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		s = strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
		if i := strings.LastIndex(s, ","); i >= 0 {
			s = s[:i]
		}
		exprs = append(exprs, s)
	}
	if len(exprs) < 10 {
		t.Fatalf("%s has %d queries; the dashboard was not read", dashboardFile, len(exprs))
	}
	return exprs
}

func TestRulesAndDashboardUseOnlyExposedMetrics(t *testing.T) {
	exposed := exposedSeries(t)
	used := map[string][]string{} // metric → where
	recorded := map[string]bool{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			names, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("rule %s%s: %v", r.Alert, r.Record, err)
			}
			for _, n := range names {
				used[n] = append(used[n], "rule "+r.Alert+r.Record)
			}
		}
	}
	for _, e := range dashboardExprs(t) {
		names, err := metricNames(e)
		if err != nil {
			t.Errorf("dashboard query %q: %v", e, err)
		}
		for _, n := range names {
			used[n] = append(used[n], "dashboard")
		}
	}
	// The unit tests' input series must be real too, or they test a
	// metric the service does not have.
	var unitTests struct {
		Tests []struct {
			InputSeries []struct {
				Series string `json:"series"`
			} `json:"input_series"`
		} `json:"tests"`
	}
	readYAML(t, "monitoring/rules_test.yaml", &unitTests)
	for _, test := range unitTests.Tests {
		for _, in := range test.InputSeries {
			name, _, _ := strings.Cut(in.Series, "{")
			used[name] = append(used[name], "rules_test.yaml")
		}
	}
	var missing []string
	for name, where := range used {
		switch {
		case exposed[name], recorded[name]:
		case name == "up": // Prometheus's own, per target.
		default:
			missing = append(missing, name+" ("+strings.Join(slices.Compact(where), ", ")+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s is used but not in the service's /metrics output", m)
	}
	if len(used) < 10 {
		t.Errorf("found %d metric names in the rules and the dashboard; the extraction is broken", len(used))
	}
}

func TestPrometheusFilesAreInTheKustomization(t *testing.T) {
	var k struct {
		Resources          []string `json:"resources"`
		ConfigMapGenerator []struct {
			Files []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	readYAML(t, "monitoring/kustomization.yaml", &k)
	if !slices.Contains(k.Resources, filepath.Base(prometheusRuleFile)) {
		t.Errorf("monitoring/kustomization.yaml does not include %s", prometheusRuleFile)
	}
	if len(k.ConfigMapGenerator) != 1 || !slices.Contains(k.ConfigMapGenerator[0].Files, "dashboards/jitsi-signer.json") {
		t.Errorf("monitoring/kustomization.yaml does not ship the dashboard")
	}
}
