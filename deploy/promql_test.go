package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// PromQL words that are not metric names.
var (
	promqlGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true, "atan2": true}
	promqlAggs     = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
)

// metricNames returns the metric names a PromQL expression selects, each
// once, in order of appearance. It lexes the expression rather than parse
// it: strings, label matchers ({…}, except a __name__ equality), ranges and
// subqueries ([…]), grouping label lists, numbers, durations, function
// calls, keywords and Grafana variables ($job) are skipped; every other
// identifier is a metric name.
func metricNames(expr string) ([]string, error) {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// skipString returns the index after the string starting at i.
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	// skipGroup returns the index after the bracket that closes the one at
	// i, and the text between them.
	skipGroup := func(i int) (int, string, error) {
		open := expr[i]
		closer := map[byte]byte{'{': '}', '[': ']', '(': ')'}[open]
		for j := i + 1; j < len(expr); {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, "", err
				}
				j = k
			case c == closer:
				return j + 1, expr[i+1 : j], nil
			case c == open:
				return 0, "", fmt.Errorf("nested %q at %d", open, j)
			default:
				j++
			}
		}
		return 0, "", fmt.Errorf("unclosed %q at %d", open, i)
	}
	depth := 0
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, body, err := skipGroup(i)
			if err != nil {
				return nil, err
			}
			for _, m := range strings.Split(body, ",") {
				k, v, ok := strings.Cut(m, "=")
				if ok && strings.TrimSpace(k) == "__name__" && !strings.HasPrefix(v, "~") {
					add(strings.Trim(strings.TrimSpace(v), "\"'`"))
				}
			}
			i = j
		case c == '[':
			j, _, err := skipGroup(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				for i < len(expr) && expr[i] != '}' {
					i++
				}
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case promqlGrouping[word]:
				if next < len(expr) && expr[next] == '(' {
					k, _, err := skipGroup(next)
					if err != nil {
						return nil, err
					}
					j = k
				}
			case promqlKeywords[word]:
			case next < len(expr) && expr[next] == '(':
				// A function or aggregation call.
			case promqlAggs[word] && next < len(expr) && isIdentStart(expr[next]):
				// An aggregation followed by by/without.
			default:
				add(word)
			}
			i = j
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"bare", `up`, []string{"up"}},
		{"matchers and range", `rate(foo_total{job="a",code=~"5.."}[5m])`, []string{"foo_total"}},
		{"aggregation with by before", `sum by (job, le) (rate(x_bucket[1m]))`, []string{"x_bucket"}},
		{"aggregation with by after", `sum(rate(x_total[1m])) by (caller)`, []string{"x_total"}},
		{"vector matching", `a / on(job) group_left(instance) b`, []string{"a", "b"}},
		{"set operators", `a > 0 unless b > 0 and c or d`, []string{"a", "b", "c", "d"}},
		{"numbers and durations", `a > 90 * 24 * 3600 offset 1h30m`, []string{"a"}},
		{"quantile", `histogram_quantile(0.99, sum by (le) (rate(h_bucket{route="/v1/links"}[$__rate_interval])))`, []string{"h_bucket"}},
		{"grafana variables", `rate(a{job=~"$job",instance=~"${instance}"}[$__interval])`, []string{"a"}},
		{"strings hold no names", `label_replace(a, "dst", "$1", "src", "(b_total).*")`, []string{"a"}},
		{"__name__ matcher", `{__name__="a_total", job="x"}`, []string{"a_total"}},
		{"repeated", `a + a * b`, []string{"a", "b"}},
		{"absent", `absent(up{job="jitsi-signer"})`, []string{"up"}},
		{"colon names", `job:requests:rate5m > 1`, []string{"job:requests:rate5m"}},
		{"comment", "a # b\n+ c", []string{"a", "c"}},
		{"bool modifier", `a > bool 1`, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metricNames(tt.expr)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{`rate(a[5m]`, `a{job="x"`, `a{job="x}`, `sum(a))`} {
		if got, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q) = %q, nil; want an error", bad, got)
		}
	}
}
