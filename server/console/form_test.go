package console_test

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// formValues returns what a browser submits for the form posting to
// action: text-like inputs with their values, checked checkboxes, textareas
// and each select's selected (else first) option.
func formValues(t *testing.T, body, action string) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, k string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val, true
			}
		}
		return "", false
	}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			} else {
				b.WriteString(text(c))
			}
		}
		return b.String()
	}
	out := url.Values{}
	var form *html.Node
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if a, _ := attr(n, "action"); a != action {
					return
				}
				form = n
			case "input":
				name, _ := attr(n, "name")
				typ, _ := attr(n, "type")
				val, _ := attr(n, "value")
				_, checked := attr(n, "checked")
				switch {
				case name == "":
				case typ == "checkbox" || typ == "radio":
					if checked {
						out.Add(name, val)
					}
				case typ == "submit" || typ == "button":
				default:
					out.Add(name, val)
				}
			case "textarea":
				if name, _ := attr(n, "name"); name != "" {
					// A browser drops the one newline after <textarea>.
					out.Add(name, strings.TrimPrefix(text(n), "\n"))
				}
			case "select":
				name, _ := attr(n, "name")
				var first, chosen *string
				for o := n.FirstChild; o != nil; o = o.NextSibling {
					if o.Type != html.ElementNode || o.Data != "option" {
						continue
					}
					v, _ := attr(o, "value")
					if first == nil {
						first = &v
					}
					if _, sel := attr(o, "selected"); sel && chosen == nil {
						chosen = &v
					}
				}
				if chosen == nil {
					chosen = first
				}
				if name != "" && chosen != nil {
					out.Add(name, *chosen)
				}
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if form == nil {
		t.Fatalf("no form posting to %s on the page", action)
	}
	return out
}
