package hub

import (
	"go/ast"
	"go/build"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestMetricReasonsAreDeclared: every reason label of the refusal and
// close counters is exported at zero before its first event, so a
// dashboard or an alert on rate() sees a series from the start.
func TestMetricReasonsAreDeclared(t *testing.T) {
	m := NewMetrics(nil)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"pongcast_handshake_refusals_total": {"bad_request", "forbidden", "ip_rate", "origin", "shutting_down",
			"upgrade", "server_full", "user_full", "pending_full", "pending_ip"},
		"pongcast_client_closes_total": {"rate_limited", "token_expired", "shutdown", "binary", "invalid_utf8",
			"slow_consumer", "write_timeout", "keepalive", "message_timeout", "client", "too_big", "error"},
	}
	for name, reasons := range want {
		t.Run(name, func(t *testing.T) {
			got := labelValues(families, name, "reason")
			for _, r := range reasons {
				if v, ok := got[r]; !ok || v != 0 {
					t.Errorf("%s{reason=%q}: present %v, value %v; want declared at 0", name, r, ok, v)
				}
			}
		})
	}
}

func labelValues(families []*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestMetricReasonsMatchTheCode reads this package's source (and
// wsconn's): the reasons the code counts refusals and closes under must be
// exactly the lists in metrics.go, so a new reason cannot be left out of
// them (and a reason the code no longer uses does not linger there).
func TestMetricReasonsMatchTheCode(t *testing.T) {
	t.Run("handshake refusals", func(t *testing.T) {
		used := refusalReasonsInCode(t)
		checkSameReasons(t, "handshakeRefusalReasons", handshakeRefusalReasons, used)
	})
	t.Run("client closes", func(t *testing.T) {
		used := map[string]string{}
		for _, dir := range []string{".", filepath.Join("internal", "wsconn")} {
			for label, where := range causeLabelsInCode(t, dir) {
				used[label] = where
			}
		}
		var listed []string
		for _, c := range closeCauses {
			listed = append(listed, c.Label)
		}
		checkSameReasons(t, "closeCauses", listed, used)
	})
}

// checkSameReasons compares a list in metrics.go with the reasons found in
// the code (each with where it was found).
func checkSameReasons(t *testing.T, list string, listed []string, used map[string]string) {
	t.Helper()
	if len(used) == 0 {
		t.Fatal("found no reasons in the code: the scan no longer matches it")
	}
	for r, where := range used {
		if !slices.Contains(listed, r) {
			t.Errorf("reason %q (%s) is not in %s in metrics.go", r, where, list)
		}
	}
	for _, r := range listed {
		if _, ok := used[r]; !ok {
			t.Errorf("%s lists %q, which the code does not use", list, r)
		}
	}
	if dup := duplicates(listed); len(dup) > 0 {
		t.Errorf("%s lists %q more than once", list, dup)
	}
}

func duplicates(list []string) []string {
	var dup []string
	seen := map[string]bool{}
	for _, s := range list {
		if seen[s] {
			dup = append(dup, s)
		}
		seen[s] = true
	}
	return dup
}

// parseDir parses the non-test Go files of dir that build here.
func parseDir(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range pkg.GoFiles {
		name = filepath.Join(dir, name)
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// refusalReasonsInCode type-checks this package and returns every reason
// passed to HandshakeRefusals.WithLabelValues: a constant, or a value of a
// named string type (admitReason), which stands for all the non-empty
// constants of that type. Any other argument fails the test: the list
// could not be checked against it.
func refusalReasonsInCode(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files := parseDir(t, fset, ".")
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	// The imports are left empty: what is checked here is this package's
	// own constants and types, and type-checking every dependency from
	// source would take seconds. The errors that leaves are expected.
	conf := types.Config{Importer: emptyImporter{}, Error: func(error) {}}
	pkg, _ := conf.Check("github.com/pongcast/pongcast/hub", fset, files, info)
	used := map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if fn, ok := n.(*ast.FuncDecl); ok && fn.Name.Name == "NewMetrics" {
				return false // it declares the listed reasons; it counts none
			}
			call, ok := n.(*ast.CallExpr)
			if !ok || !isMethodOf(call, "HandshakeRefusals", "WithLabelValues") {
				return true
			}
			where := fset.Position(call.Pos()).String()
			if len(call.Args) != 1 {
				t.Errorf("%s: WithLabelValues with %d arguments, want the reason alone", where, len(call.Args))
				return true
			}
			arg := call.Args[0]
			if tv := info.Types[arg]; tv.Value != nil && tv.Value.Kind() == constant.String {
				used[constant.StringVal(tv.Value)] = where
				return true
			}
			// string(reason): look at the reason's own type.
			if conv, ok := arg.(*ast.CallExpr); ok && len(conv.Args) == 1 && info.Types[conv.Fun].IsType() {
				arg = conv.Args[0]
			}
			named, ok := info.Types[arg].Type.(*types.Named)
			if !ok || named.Obj().Pkg() != pkg {
				t.Errorf("%s: the reason is neither a constant nor of a named reason type: give it one", where)
				return true
			}
			found := false // counted anew at each use: another use may have listed them
			for _, name := range pkg.Scope().Names() {
				c, ok := pkg.Scope().Lookup(name).(*types.Const)
				if ok && types.Identical(c.Type(), named) {
					if v := constant.StringVal(c.Val()); v != "" {
						used[v] = where + " (" + name + ")"
						found = true
					}
				}
			}
			if !found {
				t.Errorf("%s: type %s has no constants", where, named.Obj().Name())
			}
			return true
		})
	}
	return used
}

// emptyImporter imports every package as an empty one.
type emptyImporter struct{}

func (emptyImporter) Import(path string) (*types.Package, error) {
	p := types.NewPackage(path, pathpkg.Base(path))
	p.MarkComplete()
	return p, nil
}

// isMethodOf reports whether call is x.field.method(...).
func isMethodOf(call *ast.CallExpr, field, method string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != method {
		return false
	}
	inner, ok := sel.X.(*ast.SelectorExpr)
	return ok && inner.Sel.Name == field
}

// causeLabelsInCode returns the Label of every Cause literal (wsconn.Cause
// outside wsconn) in the non-test files of dir. A Cause without a literal
// Label fails the test.
func causeLabelsInCode(t *testing.T, dir string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	labels := map[string]string{}
	for _, f := range parseDir(t, fset, dir) {
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || !isCauseType(lit.Type) {
				return true
			}
			where := fset.Position(lit.Pos()).String()
			label := ""
			for _, elt := range lit.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if key, ok := kv.Key.(*ast.Ident); !ok || key.Name != "Label" {
					continue
				}
				if s, ok := kv.Value.(*ast.BasicLit); ok && s.Kind == token.STRING {
					label, _ = strconv.Unquote(s.Value)
				}
			}
			if label == "" {
				t.Errorf("%s: a Cause without a literal Label", where)
				return true
			}
			labels[label] = where
			return true
		})
	}
	return labels
}

func isCauseType(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name == "Cause"
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		return ok && x.Name == "wsconn" && e.Sel.Name == "Cause"
	}
	return false
}
