package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ParseURL accepts what asynq.ParseRedisURI does — redis://,
// rediss:// (TLS), redis-socket:// — and, through go-redis' own parsers
// (redis.ParseFailoverURL, redis.ParseClusterURL), keeping every option in
// the URL's query:
//
//	redis-sentinel://[:sentinel-password@]host:port,host:port[/db]?master=NAME[&password=P][&option=value...]
//	redis-cluster://[user:password@]host:port,host:port[?option=value...]
//
// (rediss-sentinel:// and rediss-cluster:// for TLS). A sentinel address
// without a port gets 26379, a cluster one 6379. The options are go-redis'
// query options (pool_size, dial_timeout, read_timeout, max_retries, …);
// an unknown one is an error. A cluster URL's path may only be empty or /0
// (a cluster has no other database). Errors may hold the URL: pass them
// through RedactURL before showing them.
func ParseURL(s string) (asynq.RedisConnOpt, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return asynq.ParseRedisURI(s)
	}
	switch scheme {
	case "redis-sentinel", "rediss-sentinel":
		u, err := goRedisURL(scheme == "rediss-sentinel", rest, "26379", "master", "master_name")
		if err != nil {
			return nil, fmt.Errorf("%s://: %w", scheme, err)
		}
		o, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, fmt.Errorf("%s://: %w", scheme, err)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("%s:// needs ?master=NAME (the name the sentinels monitor)", scheme)
		}
		if o.TLSConfig != nil { // one name for every sentinel and primary would not verify
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.TLSConfig.InsecureSkipVerify} //nolint:gosec // skip_verify is the operator's choice
		}
		return FailoverOpt{Options: o}, nil
	case "redis-cluster", "rediss-cluster":
		u, err := goRedisURL(scheme == "rediss-cluster", rest, "6379", "", "")
		if err != nil {
			return nil, fmt.Errorf("%s://: %w", scheme, err)
		}
		o, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("%s://: %w", scheme, err)
		}
		if o.TLSConfig != nil {
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return ClusterOpt{Options: o}, nil
	}
	return asynq.ParseRedisURI(s)
}

// goRedisURL rewrites the rest of one of our multi-host URLs (after
// "scheme://") into the form go-redis' parsers take: the first host as
// the URL's host, the others as addr= options. defPort completes an
// address without a port; a query option named from is renamed to.
func goRedisURL(tls bool, rest, defPort, from, to string) (string, error) {
	var userinfo string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo, rest = rest[:at+1], rest[at+1:]
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, path, _ := strings.Cut(rest, "/")
	var addrs []string
	for _, a := range strings.Split(hosts, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			if _, _, err2 := net.SplitHostPort(a + ":" + defPort); err2 != nil {
				return "", fmt.Errorf("address %q: %w", a, err)
			}
			a += ":" + defPort
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return "", errors.New("needs at least one host:port")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	if from != "" && q.Has(from) {
		q.Set(to, q.Get(from))
		q.Del(from)
	}
	if q.Has("addr") {
		return "", errors.New("list the addresses before the path, separated by commas, not as addr= options")
	}
	if to == "" { // a cluster
		if path != "" && path != "0" {
			return "", fmt.Errorf("a Redis Cluster has only database 0, not %q", path)
		}
		path = ""
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	scheme := "redis"
	if tls {
		scheme = "rediss"
	}
	u := scheme + "://" + userinfo + addrs[0]
	if path != "" {
		u += "/" + path
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, nil
}

// FailoverOpt connects through Redis Sentinel to the primary it names, with
// every go-redis option its URL gave. It is the asynq.RedisConnOpt
// ParseURL returns for redis-sentinel:// (asynq's RedisFailoverClientOpt
// carries only a few of go-redis' options).
type FailoverOpt struct{ Options *redis.FailoverOptions }

// MakeRedisClient returns a new *redis.Client that follows the primary.
func (o FailoverOpt) MakeRedisClient() any {
	c := *o.Options
	return redis.NewFailoverClient(&c)
}

// ClusterOpt connects to a Redis Cluster with every go-redis option its
// URL gave. It is the asynq.RedisConnOpt ParseURL returns for
// redis-cluster:// (asynq's RedisClusterClientOpt carries only a few of
// go-redis' options); asynq's cluster support (its Inspector's
// ClusterKeySlot, ClusterNodes) sees the *redis.ClusterClient it makes.
type ClusterOpt struct{ Options *redis.ClusterOptions }

// MakeRedisClient returns a new *redis.ClusterClient.
func (o ClusterOpt) MakeRedisClient() any {
	c := *o.Options
	return redis.NewClusterClient(&c)
}

var (
	_ asynq.RedisConnOpt = FailoverOpt{}
	_ asynq.RedisConnOpt = ClusterOpt{}
)

// RedactURL replaces the passwords of the Redis URL url (its userinfo's,
// and a password= or sentinel_password= option's) wherever they appear in
// s (an error message, or url itself) with REDACTED.
func RedactURL(s, url string) string {
	i := strings.Index(url, "://")
	if i < 0 {
		return s
	}
	rest := url[i+3:]
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo := rest[:at]
		if c := strings.Index(userinfo, ":"); c >= 0 && c+1 < len(userinfo) {
			s = strings.ReplaceAll(s, userinfo[c+1:], "REDACTED")
		} else if userinfo != "" && !strings.Contains(userinfo, ":") {
			s = strings.ReplaceAll(s, userinfo, "REDACTED")
		}
		rest = rest[at+1:]
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for _, kv := range strings.Split(query, "&") {
			if k, v, _ := strings.Cut(kv, "="); v != "" && strings.HasSuffix(k, "password") {
				s = strings.ReplaceAll(s, v, "REDACTED")
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
