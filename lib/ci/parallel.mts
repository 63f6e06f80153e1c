// parallel: jobs as GitLab names them (Gitlab::Ci::Config::Normalizer):
// "job 1/3" for parallel: N, "job: [a, b]" for each combination of a
// matrix entry, with CI_NODE_INDEX and CI_NODE_TOTAL; and GitLab's slugs.
import type { JobDefinition } from './model.mts';

export interface Instance {
  name: string;
  matrix: Record<string, string>;
  node: Record<string, string>;
}

/** parallel: N gives "job 1/N" ...; parallel: matrix gives "job: [a, b]" per combination. */
export function expandParallel(definition: JobDefinition): Instance[] {
  const parallel = definition.parallel;
  if (!parallel) return [{ name: definition.name, matrix: {}, node: {} }];
  if ('total' in parallel) {
    return Array.from({ length: parallel.total }, (_, index) => ({
      name: `${definition.name} ${index + 1}/${parallel.total}`,
      matrix: {},
      node: { CI_NODE_INDEX: String(index + 1), CI_NODE_TOTAL: String(parallel.total) },
    }));
  }
  const combinations: Array<Record<string, string>> = [];
  for (const entry of parallel.matrix) {
    let partial: Array<Record<string, string>> = [{}];
    for (const [name, values] of entry) {
      partial = partial.flatMap((combination) => values.map((value) => ({ ...combination, [name]: value })));
    }
    combinations.push(...partial);
  }
  return combinations.map((matrix, index) => ({
    name: `${definition.name}: [${Object.values(matrix).join(', ')}]`,
    matrix,
    node: { CI_NODE_INDEX: String(index + 1), CI_NODE_TOTAL: String(combinations.length) },
  }));
}

/** CI_JOB_NAME_SLUG's rule: lower case, [a-z0-9] kept, others "-", at most 63, no "-" at the ends. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]/g, '-').slice(0, 63).replace(/^-+|-+$/g, '');
}
