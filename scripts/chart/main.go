// Chart draws the broker benchmarks as one SVG with two panels:
//
//   - end-to-end latency percentiles (p50, p99, p99.9) against the offered
//     rate, from the JSON lines of runnel bench latency --json, both axes
//     logarithmic, one line per percentile and configuration (partitions,
//     acks, record size), each point the median over the runs at that rate;
//   - produce throughput, from the JSON lines of runnel bench produce
//     --json: one bar per configuration (partitions, clients, acks,
//     compression, record size) at the median, with a whisker from the
//     slowest to the fastest run.
//
// Usage:
//
//	go run ./scripts/chart --latency latency.json --produce produce-p1.json \
//		--produce produce-p8.json --out chart.svg
//
// It uses the standard library only and writes the SVG by hand.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// latencyRun is the part of a runnel bench latency summary that is drawn.
type latencyRun struct {
	Mode       string  `json:"mode"`
	Partitions int     `json:"partitions"`
	Acks       string  `json:"acks"`
	RecordSize int     `json:"record_size"`
	Rate       int     `json:"rate"`
	P50        float64 `json:"e2e_p50_ms"`
	P99        float64 `json:"e2e_p99_ms"`
	P999       float64 `json:"e2e_p99_9_ms"`
	FellBehind bool    `json:"fell_behind"`
}

// produceRun is the part of a runnel bench produce summary that is drawn.
type produceRun struct {
	Mode          string  `json:"mode"`
	Partitions    int     `json:"partitions"`
	Clients       int     `json:"clients"`
	Acks          string  `json:"acks"`
	Compression   string  `json:"compression"`
	RecordSize    int     `json:"record_size"`
	RecordsPerSec float64 `json:"records_per_second"`
}

type filesFlag []string

func (f *filesFlag) String() string     { return strings.Join(*f, ",") }
func (f *filesFlag) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var latFiles, prodFiles filesFlag
	flag.Var(&latFiles, "latency", "JSON lines of runnel bench latency --json (repeatable)")
	flag.Var(&prodFiles, "produce", "JSON lines of runnel bench produce --json (repeatable)")
	out := flag.String("out", "-", "SVG file to write (-: standard output)")
	title := flag.String("title", "runnel broker benchmarks", "title of the chart")
	note := flag.String("note", "", "line under the title, e.g. the machine and settings")
	flag.Parse()
	if err := run(latFiles, prodFiles, *out, *title, *note); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(latFiles, prodFiles []string, out, title, note string) error {
	if len(latFiles)+len(prodFiles) == 0 {
		return errors.New("give --latency or --produce files (see -h)")
	}
	var lat []latencyRun
	for _, f := range latFiles {
		if err := readLines(f, "latency", &lat); err != nil {
			return err
		}
	}
	var prod []produceRun
	for _, f := range prodFiles {
		if err := readLines(f, "produce", &prod); err != nil {
			return err
		}
	}
	var c canvas
	c.header(title, note)
	c.latencyPanel(lat)
	c.producePanel(prod)
	c.WriteString("</svg>\n")
	if out == "-" {
		_, err := os.Stdout.WriteString(c.String())
		return err
	}
	return os.WriteFile(out, []byte(c.String()), 0o644)
}

// readLines appends to runs every JSON line of file whose "mode" is mode;
// other lines (progress, other benchmarks) are skipped.
func readLines[T any](file, mode string, runs *[]T) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m struct {
			Mode string `json:"mode"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
		if m.Mode != mode {
			continue
		}
		var r T
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
		*runs = append(*runs, r)
	}
	return sc.Err()
}

// ---- layout ----

const (
	width  = 1200
	height = 540
	top    = 90  // plot areas start here
	bottom = 450 // and end here; x labels and legends below
)

// Plot areas of the two panels, in pixels.
var (
	latArea  = box{x0: 80, x1: 640, y0: top, y1: bottom}
	prodArea = box{x0: 790, x1: 1160, y0: top, y1: bottom}
)

type box struct{ x0, x1, y0, y1 float64 }

// Colours of the percentiles and dash patterns of the configurations.
var (
	pctNames  = []string{"p50", "p99", "p99.9"}
	pctColors = []string{"#1f77b4", "#ff7f0e", "#d62728"}
	dashes    = []string{"", "7 4", "2 3", "9 3 2 3"}
)

// axis maps values to pixels, linearly or by logarithm.
type axis struct {
	lo, hi float64 // values at the ends
	p0, p1 float64 // pixels at the ends
	log    bool
}

func (a axis) px(v float64) float64 {
	if a.log {
		v = math.Max(v, a.lo)
		return a.p0 + (math.Log10(v)-math.Log10(a.lo))/(math.Log10(a.hi)-math.Log10(a.lo))*(a.p1-a.p0)
	}
	return a.p0 + (v-a.lo)/(a.hi-a.lo)*(a.p1-a.p0)
}

// canvas accumulates SVG elements.
type canvas struct{ strings.Builder }

func (c *canvas) f(format string, args ...any) { fmt.Fprintf(c, format, args...) }

func (c *canvas) line(x0, y0, x1, y1 float64, stroke string, w float64, dash string) {
	c.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>`+"\n",
		x0, y0, x1, y1, stroke, w, dashAttr(dash))
}

// text writes s at (x, y); anchor is start, middle or end; extra is
// further attributes.
func (c *canvas) text(x, y float64, anchor, s, extra string) {
	c.f(`<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", x, y, anchor, extra, esc(s))
}

func dashAttr(d string) string {
	if d == "" {
		return ""
	}
	return ` stroke-dasharray="` + d + `"`
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func esc(s string) string { return xmlEscaper.Replace(s) }

func (c *canvas) header(title, note string) {
	c.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13" fill="#222">`+"\n",
		width, height, width, height)
	c.f(`<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	c.text(width/2, 30, "middle", title, ` font-size="20" font-weight="bold"`)
	if note != "" {
		c.text(width/2, 52, "middle", note, ` font-size="13" fill="#555"`)
	}
}

// frame draws the plot area's border, its title and the y-axis title.
func (c *canvas) frame(b box, title, ytitle string) {
	c.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", b.x0, b.y0, b.x1-b.x0, b.y1-b.y0)
	c.text((b.x0+b.x1)/2, b.y0-12, "middle", title, ` font-size="15" font-weight="bold"`)
	cy := (b.y0 + b.y1) / 2
	c.f(`<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		b.x0-58, cy, b.x0-58, cy, esc(ytitle))
}

// ---- panel 1: latency against offered rate ----

type latencyConfig struct {
	partitions, recordSize int
	acks                   string
}

func (k latencyConfig) String() string {
	return fmt.Sprintf("%s, acks=%s, %d B", plural(k.partitions, "partition"), k.acks, k.recordSize)
}

// latencyPoint is the medians of the runs of one configuration at one rate.
type latencyPoint struct {
	rate       int
	pct        [3]float64 // p50, p99, p99.9
	runs       int
	fellBehind int // runs in which the producer fell behind
}

func (c *canvas) latencyPanel(runs []latencyRun) {
	b := latArea
	c.frame(b, "End-to-end latency at a fixed offered rate", "latency, ms (log scale)")
	if len(runs) == 0 {
		c.text((b.x0+b.x1)/2, (b.y0+b.y1)/2, "middle", "no runnel bench latency results given", ` fill="#888"`)
		return
	}
	groups := map[latencyConfig]map[int][]latencyRun{}
	for _, r := range runs {
		k := latencyConfig{r.Partitions, r.RecordSize, r.Acks}
		if groups[k] == nil {
			groups[k] = map[int][]latencyRun{}
		}
		groups[k][r.Rate] = append(groups[k][r.Rate], r)
	}
	configs := make([]latencyConfig, 0, len(groups))
	for k := range groups {
		configs = append(configs, k)
	}
	slices.SortFunc(configs, func(a, b latencyConfig) int {
		return cmp.Or(cmp.Compare(a.partitions, b.partitions), cmp.Compare(a.acks, b.acks), cmp.Compare(a.recordSize, b.recordSize))
	})
	configs = configs[:min(len(configs), len(dashes))]

	var series [][]latencyPoint
	var rates []int
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, k := range configs {
		var pts []latencyPoint
		for rate, rs := range groups[k] {
			p := latencyPoint{rate: rate, runs: len(rs)}
			for i, get := range []func(latencyRun) float64{
				func(r latencyRun) float64 { return r.P50 },
				func(r latencyRun) float64 { return r.P99 },
				func(r latencyRun) float64 { return r.P999 },
			} {
				vs := make([]float64, len(rs))
				for j, r := range rs {
					vs[j] = get(r)
				}
				p.pct[i] = median(vs)
				if p.pct[i] > 0 {
					lo, hi = math.Min(lo, p.pct[i]), math.Max(hi, p.pct[i])
				}
			}
			for _, r := range rs {
				if r.FellBehind {
					p.fellBehind++
				}
			}
			pts = append(pts, p)
			if !slices.Contains(rates, rate) {
				rates = append(rates, rate)
			}
		}
		slices.SortFunc(pts, func(a, b latencyPoint) int { return cmp.Compare(a.rate, b.rate) })
		series = append(series, pts)
	}
	slices.Sort(rates)
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}

	// Axes: both logarithmic; y spans whole decades.
	ya := axis{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi))), p0: b.y1, p1: b.y0, log: true}
	if ya.hi <= ya.lo {
		ya.hi = ya.lo * 10
	}
	xa := axis{lo: float64(rates[0]) / 1.6, hi: float64(rates[len(rates)-1]) * 1.6, p0: b.x0, p1: b.x1, log: true}
	decades := math.Log10(ya.hi / ya.lo)
	for d := math.Log10(ya.lo); d <= math.Log10(ya.hi)+1e-9; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if v > ya.hi*1.0001 {
				break
			}
			y := ya.px(v)
			major := m == 1
			if major || decades <= 3 {
				c.text(b.x0-6, y+4, "end", fmtMs(v), "")
			}
			stroke := "#e4e4e4"
			if major {
				stroke = "#c8c8c8"
			}
			c.line(b.x0, y, b.x1, y, stroke, 1, "")
		}
	}
	for _, r := range rates {
		x := xa.px(float64(r))
		c.line(x, b.y0, x, b.y1, "#e4e4e4", 1, "")
		c.line(x, b.y1, x, b.y1+5, "#444", 1, "")
		c.text(x, b.y1+20, "middle", fmtCount(float64(r)), "")
	}
	c.text((b.x0+b.x1)/2, b.y1+42, "middle", "offered rate, records/s (log scale)", "")

	// One polyline per configuration and percentile, a dot per point; a
	// ring marks a point where the producer fell behind its schedule.
	anyBehind := false
	for ci, pts := range series {
		for pi := range pctNames {
			var sb strings.Builder
			for _, p := range pts {
				fmt.Fprintf(&sb, "%.1f,%.1f ", xa.px(float64(p.rate)), ya.px(p.pct[pi]))
			}
			c.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n",
				strings.TrimSpace(sb.String()), pctColors[pi], dashAttr(dashes[ci]))
			for _, p := range pts {
				x, y := xa.px(float64(p.rate)), ya.px(p.pct[pi])
				c.f(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x, y, pctColors[pi])
				if p.fellBehind > 0 {
					anyBehind = true
					c.f(`<circle cx="%.1f" cy="%.1f" r="7" fill="none" stroke="#222" stroke-width="1.2"/>`+"\n", x, y)
				}
			}
		}
	}

	// Legend under the x-axis title.
	x, y := b.x0, b.y1+68.0
	for pi, name := range pctNames {
		c.line(x, y-4, x+26, y-4, pctColors[pi], 2.5, "")
		c.text(x+32, y, "start", name, "")
		x += 80
	}
	if anyBehind {
		c.f(`<circle cx="%.1f" cy="%.1f" r="7" fill="none" stroke="#222" stroke-width="1.2"/>`+"\n", x+8, y-4)
		c.text(x+22, y, "start", "producer fell behind its schedule (in ≥ 1 run)", "")
	}
	if len(configs) > 1 {
		x, y = b.x0, y+20
		for ci, k := range configs {
			c.line(x, y-4, x+26, y-4, "#444", 2, dashes[ci])
			c.text(x+32, y, "start", k.String(), "")
			x += 32 + 7.5*float64(len(k.String())) + 24 // about 7.5 px a character
		}
	} else {
		runs := 0
		for _, p := range series[0] {
			runs = max(runs, p.runs)
		}
		what := "one run per rate"
		if runs > 1 {
			what = fmt.Sprintf("medians of %d runs per rate", runs)
		}
		c.text(b.x0, y+20, "start", configs[0].String()+"; "+what, ` fill="#555"`)
	}
}

// ---- panel 2: produce throughput ----

type produceConfig struct {
	partitions, clients, recordSize int
	acks, compression               string
}

func (c *canvas) producePanel(runs []produceRun) {
	b := prodArea
	c.frame(b, "Produce throughput", "records/s")
	if len(runs) == 0 {
		c.text((b.x0+b.x1)/2, (b.y0+b.y1)/2, "middle", "no runnel bench produce results given", ` fill="#888"`)
		return
	}
	groups := map[produceConfig][]float64{}
	for _, r := range runs {
		k := produceConfig{r.Partitions, r.Clients, r.RecordSize, r.Acks, r.Compression}
		groups[k] = append(groups[k], r.RecordsPerSec)
	}
	configs := make([]produceConfig, 0, len(groups))
	for k := range groups {
		configs = append(configs, k)
	}
	slices.SortFunc(configs, func(a, b produceConfig) int {
		return cmp.Or(cmp.Compare(a.partitions, b.partitions), cmp.Compare(a.clients, b.clients),
			cmp.Compare(a.acks, b.acks), cmp.Compare(a.compression, b.compression), cmp.Compare(a.recordSize, b.recordSize))
	})
	top := 0.0
	for _, vs := range groups {
		top = math.Max(top, slices.Max(vs))
	}
	step := niceStep(top / 5)
	ya := axis{lo: 0, hi: math.Ceil(top*1.08/step) * step, p0: b.y1, p1: b.y0}
	for v := 0.0; v <= ya.hi+step/2; v += step {
		y := ya.px(v)
		c.line(b.x0, y, b.x1, y, "#e4e4e4", 1, "")
		c.text(b.x0-6, y+4, "end", fmtCount(v), "")
	}

	// What every bar shares goes in the note below; what differs labels it.
	same := func(f func(produceConfig) string) bool {
		for _, k := range configs {
			if f(k) != f(configs[0]) {
				return false
			}
		}
		return true
	}
	parts := []func(produceConfig) string{
		func(k produceConfig) string { return plural(k.partitions, "partition") },
		func(k produceConfig) string { return plural(k.clients, "client") },
		func(k produceConfig) string { return "acks=" + k.acks },
		func(k produceConfig) string {
			if k.compression == "none" {
				return "no compression"
			}
			return k.compression
		},
		func(k produceConfig) string { return fmt.Sprintf("%d B", k.recordSize) },
	}
	var common []string
	for _, f := range parts {
		if same(f) && len(configs) > 1 {
			common = append(common, f(configs[0]))
		}
	}

	slot := (b.x1 - b.x0) / float64(len(configs))
	bw := math.Min(slot*0.55, 90)
	maxRuns := 0
	for i, k := range configs {
		vs := groups[k]
		maxRuns = max(maxRuns, len(vs))
		cx := b.x0 + slot*(float64(i)+0.5)
		med := median(vs)
		y := ya.px(med)
		c.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4c78a8"/>`+"\n", cx-bw/2, y, bw, b.y1-y)
		if len(vs) > 1 {
			ylo, yhi := ya.px(slices.Min(vs)), ya.px(slices.Max(vs))
			c.line(cx, ylo, cx, yhi, "#222", 1.3, "")
			c.line(cx-6, ylo, cx+6, ylo, "#222", 1.3, "")
			c.line(cx-6, yhi, cx+6, yhi, "#222", 1.3, "")
			y = math.Min(y, yhi)
		}
		c.text(cx, y-6, "middle", fmtCount(med)+"/s", ` font-weight="bold"`)
		var label []string
		for _, f := range parts {
			if !same(f) || len(configs) == 1 {
				label = append(label, f(k))
			}
		}
		for j, l := range label {
			c.text(cx, b.y1+20+float64(j)*16, "middle", l, "")
		}
	}
	note := "bars: one run each"
	if maxRuns > 1 {
		note = fmt.Sprintf("bars: median of %d runs; whiskers: slowest to fastest", maxRuns)
	}
	if len(common) > 0 {
		c.text(b.x0, bottom+68+20, "start", strings.Join(common, ", "), ` fill="#555"`)
	}
	c.text(b.x0, bottom+68, "start", note, ` fill="#555"`)
}

// ---- numbers ----

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// niceStep returns the 1, 2, 2.5 or 5 times a power of ten nearest above v.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtMs writes a latency in ms, switching to seconds from 1 s.
func fmtMs(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'g', 3, 64) + " s"
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + " ms"
}

// fmtCount writes a count with k and M: 50000 is 50k, 2348311 is 2.35M.
func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
