package jobs

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseQueueWeights reads the queues a worker serves with their priority
// weights, "critical=6,default=3,nightly=1" (see QueueWeights).
func ParseQueueWeights(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 1 || !ValidQueue(name) {
			return nil, fmt.Errorf("%q: use NAME=WEIGHT with a queue of critical, default or nightly and a weight of 1 or more", part)
		}
		m[name] = n
	}
	return m, nil
}
