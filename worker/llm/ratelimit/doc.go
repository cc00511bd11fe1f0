// Package ratelimit shares one provider quota (requests and tokens per
// minute) between every worker process, through Redis (GCRA, via
// github.com/go-redis/redis_rate).
//
// FairShare divides the model between tenants (the tenant is the task its
// client was bound to: llm.For(client, task)): at most a number of calls in flight, shared by
// weight, a call over its tenant's share deferred with a rate-limited error
// for its caller to retry later.
//
// It wraps any llm.Client and only delays or defers calls; it knows nothing
// of the provider's protocol, tenants files or storage, and never retries a
// call itself. Of jobs it uses only the Redis key names (jobs/keys.go).
package ratelimit
