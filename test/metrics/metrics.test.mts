// nspawn-runner metrics: the events stages append, folded into histograms
// and counters in the state directory, and the exposition checked by a
// strict Prometheus text-format parser (support/prometheus.mts).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { eventsPath, recordEvent } from '../../lib/metrics/events.mts';
import { renderFamilies } from '../../lib/metrics/exposition.mts';
import { versionTime } from '../../lib/metrics/collect.mts';
import { applyEvents, emptyHistogram, emptySummary, foldEvents, observe, readSummary } from '../../lib/metrics/summary.mts';
import { StateFixture } from '../support/fixture.mts';
import { buildFailure } from '../support/runner.mts';
import { parsePrometheusText, sampleValue } from '../support/prometheus.mts';

test('the parser is strict where node_exporter and Prometheus are', () => {
  const good = '# HELP a_total A.\n# TYPE a_total counter\na_total{kind="x\\"y\\\\z"} 3\n# TYPE h histogram\n' +
    'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n';
  const families = parsePrometheusText(good);
  assert.equal(sampleValue(families, 'a_total', { kind: 'x"y\\z' }), 3);
  assert.equal(families.get('h')?.samples.length, 4);
  const bad: Array<[string, RegExp]> = [
    ['a 1', /newline/],
    ['a-b 1\n', /bad metric name/],
    ['a{b="c} 1\n', /unterminated/],
    ['a{b="\\t"} 1\n', /bad escape/],
    ['a one\n', /bad value/],
    ['a 1\na 2\n', /twice/],
    ['# TYPE a gauge\n# TYPE a gauge\na 1\n', /second TYPE/],
    ['a 1\nb 1\na{x="y"} 1\n', /not together/],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not cumulative/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /no \+Inf bucket/],
    ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /is not _count/],
  ];
  for (const [text, message] of bad) assert.throws(() => parsePrometheusText(text), message, text);
});

test('histograms: cumulative buckets, sum and count; events lines applied, torn ones skipped', () => {
  const histogram = emptyHistogram();
  for (const seconds of [0.05, 0.3, 0.3, 7, 500]) observe(histogram, seconds);
  assert.deepEqual(histogram.buckets, [1, 1, 3, 3, 3, 3, 4, 4, 4, 4]);
  assert.equal(histogram.count, 5);
  const summary = emptySummary();
  applyEvents(summary, '1 prepare_seconds 0.4\n1 gc_removed_jobs 2\n1 prepare_failed 1\n1 gc_removed_jobs 1\n1 cleanup_sec');
  assert.equal(summary.histograms.prepare.count, 1);
  assert.equal(summary.counters.gc_removed_jobs, 3);
  assert.equal(summary.counters.prepare_failed, 1);
  assert.equal(summary.histograms.cleanup.count, 0);
  const text = renderFamilies([
    { name: 'x_seconds', type: 'histogram', help: 'X.', histogram },
    { name: 'img_bytes', type: 'gauge', help: 'Line one\nline two \\ end.', samples: [{ labels: { image: 'a"b' }, value: 1.5e9 }] },
  ]);
  const families = parsePrometheusText(text);
  assert.equal(sampleValue(families, 'x_seconds_bucket', { le: '+Inf' }), 5);
  assert.equal(sampleValue(families, 'x_seconds_sum'), 507.65);
  assert.equal(sampleValue(families, 'img_bytes', { image: 'a"b' }), 1.5e9);
  assert.equal(versionTime('20250102T030405Z-abcdef', '/'), Date.UTC(2025, 0, 2, 3, 4, 5));
});

test('folding moves the events into the summary once, even after a fold that died half-way', () => {
  const root = mkdtempSync(`${tmpdir()}/nsr-metrics-`);
  try {
    recordEvent(root, 'prepare_seconds', 0.2);
    recordEvent(root, 'cleanup_seconds', 0.1);
    let { summary } = foldEvents(root);
    assert.equal(summary.histograms.prepare.count, 1);
    assert.ok(!existsSync(eventsPath(root)), 'the events are gone once folded');
    // A fold that wrote its summary but died before deleting its file: not counted again.
    recordEvent(root, 'prepare_seconds', 0.3);
    const folding = 'events.folding-1-1';
    writeFileSync(`${root}/.metrics/${folding}`, '1 prepare_seconds 9\n');
    const written = readSummary(root);
    writeFileSync(`${root}/.metrics/summary.json`, JSON.stringify({ ...written, folded: folding }));
    ({ summary } = foldEvents(root));
    assert.equal(summary.histograms.prepare.count, 2);
    assert.equal(summary.histograms.prepare.sum, 0.5);
    assert.deepEqual(readdirSync(`${root}/.metrics`).sort(), ['summary.json']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

describe('metrics of a runner with jobs', () => {
  let state: StateFixture;
  before(async () => {
    state = await StateFixture.withBusybox();
  });
  after(() => state?.dispose());

  const scrape = async () => {
    const result = await state.run(['metrics']);
    assert.equal(result.code, 0, result.stderr);
    return parsePrometheusText(result.stdout);
  };

  test('jobs by health, stage durations, failures, images with size and age, gc removals', async () => {
    assert.equal((await state.prepare('m-1')).code, 0);
    assert.equal((await state.prepare('m-2', 'no-such-image')).code, buildFailure);
    const during = await scrape();
    assert.equal(sampleValue(during, 'nspawn_runner_jobs', { state: 'running' }), 1);
    assert.equal(sampleValue(during, 'nspawn_runner_jobs', { state: 'kept' }), 0);
    assert.equal(sampleValue(during, 'nspawn_runner_prepare_duration_seconds_count'), 1);
    assert.ok(sampleValue(during, 'nspawn_runner_prepare_duration_seconds_sum')! > 0);
    assert.equal(sampleValue(during, 'nspawn_runner_prepare_failures_total'), 1);
    assert.ok(sampleValue(during, 'nspawn_runner_image_size_bytes', { image: 'busybox' })! > 1_000_000, 'busybox itself is a megabyte or more');
    assert.ok(sampleValue(during, 'nspawn_runner_image_age_seconds', { image: 'busybox' })! >= 0);

    assert.equal((await state.cleanup('m-1')).code, 0);
    assert.equal((await state.cleanup('m-2')).code, 0);
    // A job whose prepare died: gc removes it and counts it.
    assert.equal((await state.prepare('m-3')).code, 0);
    const record = JSON.parse(readFileSync(`${state.root}/.jobs/m-3/job.json`, 'utf8')) as { leaderPid: number };
    process.kill(record.leaderPid, 'SIGKILL');
    assert.equal((await state.run(['gc'])).code, 0);

    const later = await scrape();
    assert.equal(sampleValue(later, 'nspawn_runner_jobs', { state: 'running' }), 0);
    assert.equal(sampleValue(later, 'nspawn_runner_prepare_duration_seconds_count'), 2);
    assert.equal(sampleValue(later, 'nspawn_runner_cleanup_duration_seconds_count'), 2, 'm-1 and m-2: gc cleans without the cleanup command');
    assert.equal(sampleValue(later, 'nspawn_runner_gc_removed_total', { kind: 'jobs' }), 1);
    assert.equal(sampleValue(later, 'nspawn_runner_gc_removed_total', { kind: 'versions' }), 0);
    const family = later.get('nspawn_runner_prepare_duration_seconds');
    assert.equal(family?.type, 'histogram');
    assert.ok(family?.help);
    // The size was measured once and kept: a version never changes.
    assert.ok(Object.keys(readSummary(state.root).imageSizes).length === 1);
  });

  test('--output writes the file whole, for the textfile collector', async () => {
    const output = `${state.scripts}/nspawn_runner.prom`;
    const result = await state.run(['metrics', '--output', output, '--no-size']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '');
    assert.equal(statSync(output).mode & 0o777, 0o644);
    parsePrometheusText(readFileSync(output, 'utf8'));
    assert.deepEqual(readdirSync(state.scripts).filter((name) => name.includes('.tmp')), []);
  });
});
