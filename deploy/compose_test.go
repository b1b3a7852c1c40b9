package deploy

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
)

const (
	composeFile      = "compose/docker-compose.yml"
	composeRS256File = "compose/compose.rs256.yaml"
)

type composeProject struct {
	Services map[string]struct {
		Ports       []string          `json:"ports"`
		Volumes     []string          `json:"volumes"`
		Environment map[string]string `json:"environment"`
	} `json:"services"`
}

func readCompose(t *testing.T, file string) composeProject {
	t.Helper()
	var p composeProject
	readYAML(t, file, &p)
	if len(p.Services) == 0 {
		t.Fatalf("%s has no services", file)
	}
	return p
}

func TestComposeWiresTheSignerToProsody(t *testing.T) {
	p := readCompose(t, composeFile)
	signer, prosody, jicofo := p.Services["jitsi-signer"], p.Services["prosody"], p.Services["jicofo"]
	real := settings(t)
	for name := range signer.Environment {
		if _, ok := real[name]; !ok {
			t.Errorf("%s: jitsi-signer sets %s, which is not a setting", composeFile, name)
		}
	}
	// Each pair must come from the same .env entry.
	same := func(signerVar, prosodyVar string) {
		s, pr := signer.Environment[signerVar], prosody.Environment[prosodyVar]
		ref := regexp.MustCompile(`^\$\{(\w+)`)
		sm, pm := ref.FindStringSubmatch(s), ref.FindStringSubmatch(pr)
		if sm == nil || pm == nil || sm[1] != pm[1] {
			t.Errorf("jitsi-signer %s=%q and prosody %s=%q must name the same .env entry", signerVar, s, prosodyVar, pr)
		}
	}
	same("JITSI_APP_ID", "JWT_APP_ID")
	same("JITSI_APP_ID", "JWT_ACCEPTED_ISSUERS")
	same("JITSI_API_KEY", "JWT_APP_SECRET")
	same("JITSI_AUDIENCE", "JWT_ACCEPTED_AUDIENCES")
	same("JITSI_BASE_URL", "PUBLIC_URL")

	if prosody.Environment["AUTH_TYPE"] != "jwt" || prosody.Environment["ENABLE_AUTH"] != "1" || prosody.Environment["JWT_ALLOW_EMPTY"] != "0" {
		t.Errorf("prosody must require tokens: ENABLE_AUTH=1, AUTH_TYPE=jwt, JWT_ALLOW_EMPTY=0")
	}
	if !strings.Contains(prosody.Environment["XMPP_MUC_MODULES"], "token_affiliation") || jicofo.Environment["ENABLE_AUTO_OWNER"] != "0" {
		t.Errorf("moderators must come from the token: prosody XMPP_MUC_MODULES with token_affiliation, jicofo ENABLE_AUTO_OWNER=0")
	}

	// The published ports are the listeners' defaults, on loopback.
	for i, name := range []string{"SIGNER_ADDR", "SIGNER_ADMIN_ADDR"} {
		want := "127.0.0.1:" + defaultPort(t, name) + ":" + defaultPort(t, name)
		if i >= len(signer.Ports) || signer.Ports[i] != want {
			t.Errorf("jitsi-signer ports = %q; want %q for %s", signer.Ports, want, name)
		}
	}

	// The callers file is mounted as a directory and valid.
	file := signer.Environment["SIGNER_CALLERS_FILE"]
	mounted := false
	for _, v := range signer.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if strings.HasPrefix(file, dst+"/") {
			mounted = true
			b, err := os.ReadFile("compose/" + strings.TrimPrefix(src, "./") + strings.TrimPrefix(file, dst))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := caller.Parse(b, caller.Defaults{MaxTTL: 24 * time.Hour}); err != nil {
				t.Errorf("the compose callers file is invalid: %v", err)
			}
		}
	}
	if !mounted {
		t.Errorf("SIGNER_CALLERS_FILE=%s is not in a mounted directory", file)
	}
}

func TestComposeEnvExampleDefinesEveryVariable(t *testing.T) {
	b, err := os.ReadFile("compose/.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			defined[k] = true
		}
	}
	for _, file := range []string{composeFile, composeRS256File} {
		c, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\$\{(\w+)(:?[-?])?`).FindAllStringSubmatch(string(c), -1) {
			if !defined[m[1]] && !strings.HasSuffix(m[2], "-") {
				t.Errorf("%s uses ${%s}, which .env.example does not define", file, m[1])
			}
		}
	}
}

func TestComposeRS256FetchesKeysFromTheSigner(t *testing.T) {
	p := readCompose(t, composeRS256File)
	signer, prosody := p.Services["jitsi-signer"], p.Services["prosody"]
	real := settings(t)
	for name := range signer.Environment {
		if _, ok := real[name]; !ok {
			t.Errorf("%s: jitsi-signer sets %s, which is not a setting", composeRS256File, name)
		}
	}
	u, err := url.Parse(prosody.Environment["JWT_ASAP_KEYSERVER"])
	if err != nil || u.Hostname() != "jitsi-signer" || u.Port() != defaultPort(t, "SIGNER_ADDR") || u.Path != "/keys" {
		t.Errorf("prosody JWT_ASAP_KEYSERVER = %q; want the signer's API listener, http://jitsi-signer:%s/keys", prosody.Environment["JWT_ASAP_KEYSERVER"], defaultPort(t, "SIGNER_ADDR"))
	}
}
