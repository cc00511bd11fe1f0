package dashboard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// frameHeaders forbids framing of every answer, asynqmon's included
// (clickjacking a pause or delete button), and content sniffing. Our own
// pages replace the Content-Security-Policy with a stricter one that keeps
// frame-ancestors 'none'; asynqmon's inline scripts keep working under
// this one, which says nothing but frame-ancestors.
func frameHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// trustAllowedHosts lets pages served under an allowed host (through a
// reverse proxy that passes the dashboard its own Host) write.
func trustAllowedHosts(cop *http.CrossOriginProtection, allow []string) error {
	for _, a := range allow {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		for _, scheme := range []string{"http://", "https://"} {
			if err := cop.AddTrustedOrigin(scheme + a); err != nil {
				return fmt.Errorf("dashboard: allowed host %q: give a name or name:port: %w", a, err)
			}
		}
	}
	return nil
}

// hostGuard protects a dashboard served without credentials from DNS
// rebinding and cross-site writes: it answers only requests whose Host is
// a loopback name or address (localhost, 127.0.0.0/8, [::1]) with the port
// the request came in on, or one of allow; and a request that changes
// something (any method but GET, HEAD and OPTIONS: asynqmon's pause,
// cancel, delete) must not carry an Origin or Referer of another host.
type hostGuard struct {
	allow []string // lower-case host or host:port
}

func newHostGuard(allow []string) *hostGuard {
	g := &hostGuard{}
	for _, a := range allow {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			g.allow = append(g.allow, a)
		}
	}
	return g
}

func (g *hostGuard) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.hostOK(r) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "421 misdirected request: this dashboard runs without credentials and answers only for "+
				"localhost, 127.0.0.1 or [::1] with its port (or a --allow-host name)", http.StatusMisdirectedRequest)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !g.sameSite(r.Header.Get("Origin"), r.Host) || !g.sameSite(r.Header.Get("Referer"), r.Host) {
				w.Header().Set("Cache-Control", "no-store")
				http.Error(w, "403 forbidden: cross-origin request to a dashboard without credentials", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// hostOK reports whether r's Host names this dashboard.
func (g *hostGuard) hostOK(r *http.Request) bool {
	hostport := strings.ToLower(r.Host)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil { // no port
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	for _, a := range g.allow {
		if a == hostport || a == host {
			return true
		}
	}
	if !isLoopbackHost(host) {
		return false
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true // not served by a net/http server (a handler test): no port to compare
	}
	_, lport, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	if port == "" {
		port = "80"
	}
	return port == lport
}

// isLoopbackHost reports whether host (a name or an IP address without
// brackets) is "localhost" or a loopback address.
func isLoopbackHost(host string) bool {
	if host == "localhost" || host == "localhost." {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// sameSite reports whether a header holding a URL (Origin, Referer) is
// absent, names host, or names an allowed host (a reverse proxy may pass
// the dashboard its own Host while the browser's Origin names the proxy's).
// "null" (an opaque origin) names no host.
func (g *hostGuard) sameSite(header, host string) bool {
	if header == "" {
		return true
	}
	u, err := url.Parse(header)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	h := strings.ToLower(u.Host)
	for _, a := range g.allow {
		if a == h || a == strings.ToLower(u.Hostname()) {
			return true
		}
	}
	return false
}
