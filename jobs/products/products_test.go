package products

import "testing"

func TestSidecarsParse(t *testing.T) {
	csv := "\xef\xbb\xbfImage, SKU ,Product_Name,brand\na.jpg,S1,Cup,Acme\nb.jpg,S2\n,S3,No key,X\n"
	m, err := parseCSV([]byte(csv)[3:])
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["a.jpg"].Name != "Cup" || m["a.jpg"].Brand != "Acme" || m["b.jpg"].SKU != "S2" {
		t.Errorf("csv: %+v", m)
	}
	if _, err := parseCSV([]byte("sku,name\nS1,Cup\n")); err == nil {
		t.Error("a CSV without a key column was accepted")
	}
	j := "{\"key\":\"a.jpg\",\"sku\":\"S1\",\"title\":\"Cup\",\"brand\":\"Acme\"}\n\n{\"image\":\"b.jpg\",\"SKU\":2}\n"
	m, err = parseJSONL([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["a.jpg"].Name != "Cup" || m["b.jpg"].SKU != "2" {
		t.Errorf("jsonl: %+v", m)
	}
	if _, err := parseJSONL([]byte("{\"sku\":\"S1\"}\n")); err == nil {
		t.Error("a JSONL line without a key was accepted")
	}
}

func TestSidecarShopColumns(t *testing.T) {
	m, err := parseCSV([]byte("key,sku,Handle,image_position,Image_URL\na.jpg,S1,blue-mug,2,https://cdn/a.jpg\nb.jpg,S1,blue-mug,x,\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := m["a.jpg"]; a.Handle != "blue-mug" || a.Position != 2 || a.ImageSrc != "https://cdn/a.jpg" {
		t.Errorf("a.jpg %+v", a)
	}
	if b := m["b.jpg"]; b.Handle != "blue-mug" || b.Position != 0 || b.ImageSrc != "" {
		t.Errorf("b.jpg %+v (a position that is not a number is not given)", b)
	}
	j, err := parseJSONL([]byte(`{"key":"c.jpg","handle":"plate","position":1,"image_src":"https://cdn/c.jpg"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := j["c.jpg"]; c.Handle != "plate" || c.Position != 1 || c.ImageSrc != "https://cdn/c.jpg" {
		t.Errorf("c.jpg %+v", c)
	}
}
