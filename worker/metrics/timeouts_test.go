package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// serveForTest serves h with small timeouts until the test ends and
// returns the address.
func serveForTest(t *testing.T, h http.Handler, to Timeouts) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTimeouts(ctx, l, h, nil, to) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// closedByServer reads from c until the server closes it. The client's own
// deadline is far above the server's timeouts: reaching it means the
// server never dropped the connection (no wall-clock assertion otherwise).
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c) // a 408 answer may come first
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: the server kept the connection open", what)
	}
}

func TestServerDropsSlowAndIdleClients(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	addr := serveForTest(t, h, Timeouts{ReadHeader: 100 * time.Millisecond, Read: 300 * time.Millisecond, Idle: 100 * time.Millisecond})
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	write := func(c net.Conn, s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}

	closedByServer(t, dial(), "a client that sends nothing")

	c := dial()
	write(c, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
	closedByServer(t, c, "a client that sends half a header")

	c = dial()
	write(c, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly a few bytes")
	closedByServer(t, c, "a client that sends half a body")

	// A complete request is answered; then the idle connection is closed.
	c = dial()
	write(c, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("complete request: %d %q", res.StatusCode, body)
	}
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, br); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("an idle kept-alive connection was kept open")
	}
}

// A handler slower than the read timeouts still answers: the timeouts
// bound the client's sending, not the handler's work (WriteTimeout is off).
func TestSlowHandlerStillAnswers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "done")
	})
	addr := serveForTest(t, h, Timeouts{ReadHeader: 100 * time.Millisecond, Read: 100 * time.Millisecond, Idle: 100 * time.Millisecond})
	res, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "done" {
		t.Errorf("slow handler: %d %q, want 200 done", res.StatusCode, b)
	}
}

func TestTimeoutDefaults(t *testing.T) {
	d := Timeouts{}.withDefaults()
	if d.ReadHeader <= 0 || d.Read < time.Minute || d.Idle <= 0 || d.Write != 0 {
		t.Errorf("defaults %+v: want header, read (>= 1m for a 1 MiB body) and idle timeouts, no write timeout", d)
	}
}
