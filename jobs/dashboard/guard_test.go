package dashboard

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// anonymous makes the fixture's dashboard one without credentials, as on a
// loopback address.
func anonymous(allow ...string) func(*Config) {
	return func(c *Config) {
		c.Auth, c.Anonymous, c.AllowHosts = Auth{}, true, allow
	}
}

func (f *fixture) port(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// doHost is fixture.do with the "Host" of hdr sent as the request's Host
// (net/http ignores a Host header field).
func (f *fixture) doHost(t *testing.T, method, path, auth string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "":
	case "basic":
		req.SetBasicAuth(testUser, testPassword)
	default:
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestHostCheckWithoutCredentials(t *testing.T) {
	f := newFixture(t, anonymous("dash.internal", "proxy.example:8443"))
	port := f.port(t)
	for host, want := range map[string]int{
		"evil.example":             http.StatusMisdirectedRequest,
		"evil.example:" + port:     http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:" + port: http.StatusMisdirectedRequest,
		"localhost.evil.example":   http.StatusMisdirectedRequest,
		"127.0.0.1:1":              http.StatusMisdirectedRequest, // another port
		"127.0.0.1":                http.StatusMisdirectedRequest, // port 80 implied
		"proxy.example:9999":       http.StatusMisdirectedRequest,
		"0.0.0.0:" + port:          http.StatusMisdirectedRequest,
		"127.0.0.1:" + port:        http.StatusOK,
		"127.9.8.7:" + port:        http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"LocalHost:" + port:        http.StatusOK,
		"[::1]:" + port:            http.StatusOK,
		"dash.internal":            http.StatusOK,
		"dash.internal:" + port:    http.StatusOK,
		"proxy.example:8443":       http.StatusOK,
	} {
		for _, path := range []string{"/", "/asynq/api/queues", "/healthz"} {
			res, _ := f.doHost(t, "GET", path, "", map[string]string{"Host": host})
			if res.StatusCode != want {
				t.Errorf("Host %s: GET %s = %d, want %d", host, path, res.StatusCode, want)
			}
		}
	}
	// A state-changing request must not come from another origin, even
	// with a good Host.
	good := "127.0.0.1:" + port
	pause := "/asynq/api/queues/default:pause"
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want int // 0: anything but 403 and 421
	}{
		{"rebound host", map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}, http.StatusMisdirectedRequest},
		{"foreign origin", map[string]string{"Host": good, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"opaque origin", map[string]string{"Host": good, "Origin": "null"}, http.StatusForbidden},
		{"foreign referer", map[string]string{"Host": good, "Referer": "http://evil.example/page"}, http.StatusForbidden},
		{"other port's referer", map[string]string{"Host": good, "Referer": "http://127.0.0.1:1/"}, http.StatusForbidden},
		{"same origin", map[string]string{"Host": good, "Origin": "http://" + good}, 0},
		{"same referer", map[string]string{"Host": good, "Referer": "http://" + good + "/asynq/queues"}, 0},
		{"no origin (curl)", map[string]string{"Host": good}, 0},
		{"allowed proxy's origin", map[string]string{"Host": good, "Origin": "https://dash.internal"}, 0},
		{"allowed name, other port", map[string]string{"Host": good, "Origin": "https://proxy.example:9999"}, http.StatusForbidden},
	} {
		for _, method := range []string{"POST", "DELETE"} {
			res, body := f.doHost(t, method, pause, "", c.hdr)
			switch {
			case c.want != 0 && res.StatusCode != c.want:
				t.Errorf("%s: %s = %d %q, want %d", c.name, method, res.StatusCode, body, c.want)
			case c.want == 0 && (res.StatusCode == http.StatusForbidden || res.StatusCode == http.StatusMisdirectedRequest):
				t.Errorf("%s: %s = %d %q, want it to reach asynqmon", c.name, method, res.StatusCode, body)
			}
		}
	}
}

func TestHostNotCheckedWithCredentials(t *testing.T) {
	f := newFixture(t, nil)
	for _, host := range []string{"evil.example", "dashboard.example.com:443"} {
		if res, _ := f.doHost(t, "GET", "/", "basic", map[string]string{"Host": host}); res.StatusCode != http.StatusOK {
			t.Errorf("with credentials, Host %s: %d, want 200", host, res.StatusCode)
		}
	}
}

func TestNoFraming(t *testing.T) {
	for name, mutate := range map[string]func(*Config){"with credentials": nil, "anonymous": anonymous()} {
		f := newFixture(t, mutate)
		auth := "basic"
		if mutate != nil {
			auth = ""
		}
		for _, c := range []struct{ path, auth string }{
			{"/", auth}, {"/batches/" + f.batch, auth}, {"/asynq/", auth}, {"/asynq/api/queues", auth},
			{"/healthz", ""}, {"/nothing-here", auth}, {"/", "Bearer wrong"},
		} {
			res, _ := f.doHost(t, "GET", c.path, c.auth, map[string]string{"Host": "127.0.0.1:" + f.port(t)})
			h := res.Header
			if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
				h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: GET %s (%d): CSP %q, X-Frame-Options %q, X-Content-Type-Options %q", name, c.path, res.StatusCode,
					h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
			}
		}
	}
}
