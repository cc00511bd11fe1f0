package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ParseURL accepts what asynq.ParseRedisURI does — redis://,
// rediss:// (TLS), redis-socket://, redis-sentinel:// — and Redis Cluster as
// redis-cluster://[:password@]host:port,host:port (rediss-cluster:// for
// TLS). Errors may hold the URL: pass them through RedactURL before showing
// them.
func ParseURL(s string) (asynq.RedisConnOpt, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "redis-cluster" && scheme != "rediss-cluster") {
		return asynq.ParseRedisURI(s)
	}
	opt := asynq.RedisClusterClientOpt{}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pass, _ := strings.Cut(rest[:at], ":")
		opt.Username, opt.Password = user, pass
		rest = rest[at+1:]
	}
	rest, _, _ = strings.Cut(rest, "/")
	rest, _, _ = strings.Cut(rest, "?")
	for _, a := range strings.Split(rest, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("cluster address %q: %w", a, err)
			}
			opt.Addrs = append(opt.Addrs, a)
		}
	}
	if len(opt.Addrs) == 0 {
		return nil, errors.New("redis-cluster:// needs at least one host:port")
	}
	if scheme == "rediss-cluster" {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}

// RedactURL replaces the password of the Redis URL url wherever it appears
// in s (an error message, or url itself) with REDACTED.
func RedactURL(s, url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			if c := strings.Index(userinfo, ":"); c >= 0 && c+1 < len(userinfo) {
				s = strings.ReplaceAll(s, userinfo[c+1:], "REDACTED")
			} else if userinfo != "" && !strings.Contains(userinfo, ":") {
				s = strings.ReplaceAll(s, userinfo, "REDACTED")
			}
		}
	}
	return s
}

// URLError is Dial's error for a URL that does not parse. Its message
// never holds the URL's password.
type URLError struct{ msg string }

func (e *URLError) Error() string { return e.msg }

// Dial connects to the Redis that url names (see ParseURL) and pings it
// within 5s. It returns the asynq connection option and a client made from
// it; the caller closes the client. No error holds the URL's password.
func Dial(ctx context.Context, url string) (asynq.RedisConnOpt, redis.UniversalClient, error) {
	opt, err := ParseURL(url)
	if err != nil {
		return nil, nil, &URLError{msg: RedactURL(err.Error(), url)}
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, nil, fmt.Errorf("redis: unsupported connection type %T", opt)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("redis at %s is not reachable: %w", RedactURL(url, url), err)
	}
	return opt, rdb, nil
}
