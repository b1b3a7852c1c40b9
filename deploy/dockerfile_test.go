package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dockerfile = "../Dockerfile"

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from         string
	instructions []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		text := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build and a runtime stage", len(stages))
	}
	return stages
}

// envPairs parses ENV's KEY=VALUE form.
func envPairs(t *testing.T, in instruction) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range strings.Fields(in.args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("Dockerfile:%d: ENV %q is not in KEY=VALUE form", in.line, in.args)
		}
		out[k] = strings.Trim(v, `"`)
	}
	return out
}

func execForm(t *testing.T, in instruction, s string) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(s), &args); err != nil || len(args) == 0 {
		t.Errorf("Dockerfile:%d: %s %s is not in exec form (a JSON array); the image has no shell", in.line, in.cmd, s)
	}
	return args
}

func TestDockerfileBuildArgsAreUsed(t *testing.T) {
	for _, s := range parseDockerfile(t) {
		for i, in := range s.instructions {
			if in.cmd != "ARG" {
				continue
			}
			name, _, _ := strings.Cut(in.args, "=")
			used := regexp.MustCompile(`\$\{?` + regexp.QuoteMeta(name) + `\b`)
			if !slices.ContainsFunc(s.instructions[i+1:], func(later instruction) bool { return used.MatchString(later.args) }) {
				t.Errorf("Dockerfile:%d: ARG %s is never used in its stage", in.line, name)
			}
		}
	}
}

// packageVars returns the names of the package-level string variables of
// the Go package in dir.
func packageVars(t *testing.T, dir string) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, dir+"/"+e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					vars[n.Name] = true
				}
			}
		}
	}
	return vars
}

func TestDockerfileBuildsTheStampedStaticBinary(t *testing.T) {
	stages := parseDockerfile(t)
	var build *instruction
	for _, in := range stages[0].instructions {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = &in
		}
	}
	if build == nil {
		t.Fatal("the first stage has no go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/jitsi-signer"} {
		if !strings.Contains(build.args, want) {
			t.Errorf("Dockerfile:%d: go build lacks %s", build.line, want)
		}
	}
	vars := packageVars(t, "../cmd/jitsi-signer")
	stamped := regexp.MustCompile(`-X main\.(\w+)=`).FindAllStringSubmatch(build.args, -1)
	var names []string
	for _, m := range stamped {
		names = append(names, m[1])
		if !vars[m[1]] {
			t.Errorf("Dockerfile:%d: -X main.%s stamps a variable cmd/jitsi-signer does not have", build.line, m[1])
		}
	}
	if !slices.Contains(names, "version") || !slices.Contains(names, "revision") {
		t.Errorf("Dockerfile:%d: go build stamps %v; want version and revision", build.line, names)
	}
}

func TestDockerfileRuntimeMatchesTheService(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") || !strings.HasSuffix(final.from, ":nonroot") {
		t.Errorf("runtime base = %q; want gcr.io/distroless/static…:nonroot", final.from)
	}
	real := settings(t)
	env := map[string]string{}
	var exposed, copies, entrypoint, health []string
	user := ""
	for _, in := range final.instructions {
		switch in.cmd {
		case "ENV":
			for k, v := range envPairs(t, in) {
				if _, ok := real[k]; !ok {
					t.Errorf("Dockerfile:%d: ENV %s is not a jitsi-signer setting", in.line, k)
				}
				env[k] = v
			}
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "COPY":
			f := strings.Fields(in.args)
			copies = append(copies, f[len(f)-1])
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = execForm(t, in, in.args)
		case "HEALTHCHECK":
			i := strings.Index(in.args, "CMD ")
			if i < 0 {
				t.Errorf("Dockerfile:%d: HEALTHCHECK without CMD", in.line)
				continue
			}
			health = execForm(t, in, strings.TrimSpace(in.args[i+len("CMD "):]))
		}
	}
	var want []string
	for _, name := range []string{"SIGNER_ADDR", "SIGNER_ADMIN_ADDR"} {
		port := defaultPort(t, name)
		want = append(want, port)
		host, p, err := net.SplitHostPort(env[name])
		if err != nil || p != port || net.ParseIP(host) == nil || !net.ParseIP(host).IsUnspecified() {
			t.Errorf("ENV %s=%q; want 0.0.0.0:%s (every interface, the default port)", name, env[name], port)
		}
	}
	slices.Sort(exposed)
	slices.Sort(want)
	if !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %v; want the listeners' ports %v", exposed, want)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q; want a non-root user", user)
	}
	if len(copies) != 1 {
		t.Errorf("the runtime stage copies %v; want only the binary", copies)
	}
	if len(copies) == 1 && (len(entrypoint) == 0 || entrypoint[0] != copies[0] || len(health) == 0 || health[0] != copies[0]) {
		t.Errorf("ENTRYPOINT %q and HEALTHCHECK %q must run the copied binary %s", entrypoint, health, copies[0])
	}
}

func TestDockerignoreKeepsWhatTheBuildCopies(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for _, in := range parseDockerfile(t)[0].instructions {
		if in.cmd != "COPY" || strings.Contains(in.args, "--from") {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if !slices.Contains(lines, "!"+src) && !slices.Contains(lines, "!"+src+"/") {
				t.Errorf("Dockerfile:%d: COPY %s, which .dockerignore does not re-include", in.line, src)
			}
		}
	}
}
