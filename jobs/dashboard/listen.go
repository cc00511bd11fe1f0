package dashboard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// IsLoopback reports whether a listen address (host:port) only accepts
// connections from this machine: a loopback IP or "localhost". An empty
// host, 0.0.0.0, :: and any other name are not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// CheckListen refuses to serve without credentials on an address other
// machines can reach. It returns a message an operator can act on.
func CheckListen(addr string, a Auth) error {
	if a.Configured() || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing to serve the dashboard on %s without credentials: anyone who can reach it could "+
		"pause queues and read batch records. Set --auth-user with --auth-password-file (or LLAMAPIPE_DASHBOARD_PASSWORD), "+
		"or --auth-token-file (or LLAMAPIPE_DASHBOARD_TOKEN); or listen on a loopback address such as 127.0.0.1:8080", addr)
}

// ReadPassword reads a password file: its first line, without the line
// ending. Its content never appears in errors.
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pw := strings.TrimRight(string(line), "\r")
	if strings.TrimSpace(pw) == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}

// ReadTokens reads a token file: one bearer token per line (several allow
// rotation); blank lines and lines starting with # are ignored. Its content
// never appears in errors.
func ReadTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("token file %s: a token contains white space (content not shown)", path)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	return out, nil
}

// AuthSources are where the dashboard's credentials come from: the flags'
// values and the environment's (Password and Token, read by the caller
// from LLAMAPIPE_DASHBOARD_PASSWORD and LLAMAPIPE_DASHBOARD_TOKEN).
type AuthSources struct {
	User, PasswordFile, TokenFile string
	Password, Token               string
}

// LoadAuth gathers the dashboard's credentials: a password file wins over
// the environment's password; tokens come from the token file and the
// environment. A user without a password, or a password without a user,
// is refused. Secrets never appear in errors.
func LoadAuth(s AuthSources) (Auth, error) {
	a := Auth{User: s.User, Password: s.Password}
	if s.PasswordFile != "" {
		pw, err := ReadPassword(s.PasswordFile)
		if err != nil {
			return a, fmt.Errorf("--auth-password-file: %w", err)
		}
		a.Password = pw
	}
	switch {
	case a.User != "" && a.Password == "":
		return a, errors.New("--auth-user needs a password: set LLAMAPIPE_DASHBOARD_PASSWORD or --auth-password-file")
	case a.User == "" && a.Password != "":
		return a, errors.New("a basic-auth password is set but no --auth-user")
	}
	if s.TokenFile != "" {
		ts, err := ReadTokens(s.TokenFile)
		if err != nil {
			return a, fmt.Errorf("--auth-token-file: %w", err)
		}
		a.Tokens = append(a.Tokens, ts...)
	}
	if s.Token != "" {
		a.Tokens = append(a.Tokens, s.Token)
	}
	return a, nil
}
