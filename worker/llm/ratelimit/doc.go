// Package ratelimit shares one provider quota (requests and tokens per
// minute) between every worker process, through Redis (GCRA, via
// github.com/go-redis/redis_rate).
//
// It wraps any llm.Client and only delays calls; it knows nothing of the
// provider's protocol, jobs or storage, and never retries a call itself.
package ratelimit
