package tenants

import (
	"errors"
	"strings"
	"testing"
)

// Money budgets in one currency refuse a model priced in another;
// token budgets and files without a currency take any.
func TestCheckCurrency(t *testing.T) {
	c, err := Parse([]byte("currency: EUR\ntenants:\n  legal: {budget: {daily: {cost: 50}}}\n  catalog: {budget: {daily: {tokens: 1000}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckCurrency("EUR"); err != nil {
		t.Errorf("same currency: %v", err)
	}
	err = c.CheckCurrency("RUB")
	if !errors.Is(err, ErrCurrency) || !strings.Contains(err.Error(), "tenant legal has a budget in EUR but the model profile is priced in RUB") {
		t.Errorf("other currency: %v", err)
	}
	c.Currency = ""
	if err := c.CheckCurrency("RUB"); err != nil {
		t.Errorf("no currency in the file: %v", err)
	}
	tokens, _ := Parse([]byte("currency: EUR\ntenants:\n  catalog: {budget: {daily: {tokens: 1000}}}\n"))
	if err := tokens.CheckCurrency("RUB"); err != nil {
		t.Errorf("token budgets only: %v", err)
	}
}
