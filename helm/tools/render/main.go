// Command render renders a Helm chart the way `helm template` does, for tests on machines
// with no helm binary: Go's text/template with the sprig function library (helm's engine)
// plus what helm adds on top: include, tpl, required, toYaml, fromYaml, .Values (values.yaml
// merged with -f files, later files winning), .Release, .Chart, .Capabilities.KubeVersion,
// and _helpers.tpl (every template file starting with "_" holds definitions only).
//
// Usage: render [-name RELEASE] [-namespace NS] [-f values.yaml ...] CHART_DIR
// Prints each rendered manifest after a "# Source: <chart>/templates/<file>" line, as helm
// does; NOTES.txt is rendered last, under "# Source: <chart>/templates/NOTES.txt".
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// merge copies src over dst, recursing into maps (helm's coalescing of values files).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for key, value := range src {
		if sub, ok := value.(map[string]interface{}); ok {
			if existing, ok := dst[key].(map[string]interface{}); ok {
				dst[key] = merge(existing, sub)
				continue
			}
		}
		dst[key] = value
	}
	return dst
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func fromYAML(s string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func main() {
	var files valueFiles
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [-name R] [-namespace NS] [-f values.yaml ...] CHART")
		os.Exit(2)
	}
	if err := render(flag.Arg(0), *name, *namespace, files); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func render(chartDir, release, namespace string, files []string) error {
	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, file := range files {
		override, err := readYAML(file)
		if err != nil {
			return err
		}
		values = merge(values, override)
	}
	chartName, _ := chart["name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": chartName, "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
		},
		"Template": map[string]interface{}{"BasePath": chartName + "/templates"},
	}

	root := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil || value == "" {
			return nil, fmt.Errorf("%s", message)
		}
		return value, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs)

	paths, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	var manifests, notes []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		base := filepath.Base(path)
		if _, err := root.New(chartName + "/templates/" + base).Parse(string(data)); err != nil {
			return err
		}
		if base == "NOTES.txt" {
			notes = append(notes, base)
		} else if !strings.HasPrefix(base, "_") {
			manifests = append(manifests, base)
		}
	}
	for _, base := range append(manifests, notes...) {
		source := chartName + "/templates/" + base
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, source, top); err != nil {
			return err
		}
		text := strings.TrimSpace(buf.String())
		if text == "" {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", source, text)
	}
	return nil
}
