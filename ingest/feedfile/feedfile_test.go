package feedfile

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCSVAndJSONL(t *testing.T) {
	csv := "\ufeffSKU,Image_URL,name\nA1,https://cdn.example.test/p/a.jpg,Lamp\nA2,ftp://x/y.jpg,Bad\nA3,,Empty\nA4,https://cdn.example.test/p/b.jpg?w=800,Query\n"
	rows, err := Parse("catalog.csv", []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(rows), rows)
	}
	if r := rows[0]; r.Err != "" || r.SKU != "A1" || r.Name != "Lamp" || r.Key != "cdn.example.test/p/a.jpg" || r.Line != 2 {
		t.Errorf("row 1: %+v", r)
	}
	if r := rows[1]; !strings.Contains(r.Err, "not an http(s) URL") {
		t.Errorf("ftp row: %+v", r)
	}
	if r := rows[2]; !strings.Contains(r.Err, "no image URL") || r.Key != "line-4" {
		t.Errorf("empty row: %+v", r)
	}
	if r := rows[3]; r.Err != "" || !strings.HasPrefix(r.Key, "cdn.example.test/p/b.jpg_") || r.Key == rows[0].Key {
		t.Errorf("a URL with a query gets a key of its own: %+v", r)
	}

	jsonl := "{\"url\": \"https://img.example.test/c.png\", \"key\": \"../../etc/c.png\", \"sku\": 7}\n\nnot json\n"
	rows, err = Parse("feed.jsonl", []byte(jsonl))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Key != "etc/c.png" || rows[0].SKU != "7" || rows[0].Err != "" {
		t.Fatalf("JSONL rows %+v: a key cannot climb out of the feed, numbers read as text", rows)
	}
	if !strings.Contains(rows[1].Err, "line 3 is not JSON") {
		t.Errorf("bad line: %+v", rows[1])
	}
	if _, err := Parse("x.csv", []byte("sku,name\n1,a\n")); err == nil {
		t.Error("a CSV without a URL column was accepted")
	}
}

// A row's SKU and name are bounded: they travel in the item's payload.
func TestSKUAndNameAreBounded(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	rows, err := Parse("f.csv", []byte("url,sku,name\nhttps://x.example/a.jpg,"+long+","+long+"\n"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("%v %v", rows, err)
	}
	r := rows[0]
	if len(r.SKU) > MaxSKU || len(r.Name) > MaxName || !strings.HasSuffix(r.Name, "é…") || !utf8.ValidString(r.SKU) {
		t.Errorf("SKU %d bytes, name %d bytes (%q…): want at most %d and %d, valid UTF-8, ending with …",
			len(r.SKU), len(r.Name), r.Name[:10], MaxSKU, MaxName)
	}
	short, _ := Parse("f.csv", []byte("url,sku,name\nhttps://x.example/a.jpg,A-1,Mug\n"))
	if short[0].SKU != "A-1" || short[0].Name != "Mug" {
		t.Errorf("short row changed: %+v", short[0])
	}
}
