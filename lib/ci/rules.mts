// Which jobs a pipeline has: `rules:` (the first rule that matches decides;
// none matching leaves the job out), `only:`/`except:` (refs, variables,
// changes; `only` defaults to branches and tags), and `workflow: rules:` for
// the whole pipeline. Locally the pipeline is a push of the current branch,
// unless --variable says otherwise (CI_PIPELINE_SOURCE, CI_COMMIT_REF_NAME, ...).
import { evaluateExpression, ExpressionError, parseExpression, type Expression } from './expression.mts';
import { parseAllowFailure, parseNeeds, parseWhen, stringList, text } from './fields.mts';
import type { AllowFailure, NeedSpec, OnlyExceptSpec, RuleSpec, When } from './model.mts';
import { parseVariables, type Variables } from './variables.mts';
import { CiConfigError, isCiMap, keyPosition, positionOf, type CiValue, type Position } from './yaml-source.mts';

export interface RuleInputs {
  /** Expanded variables of the job (or the pipeline, for workflow rules). */
  lookup: (name: string) => string | undefined;
  /** Whether a file matching one of the globs changed (rules:changes). */
  changed: (paths: readonly string[], compareTo?: string) => boolean;
  /** Whether a file matching one of the globs exists (rules:exists). */
  exists: (paths: readonly string[]) => boolean;
}

export function parseCondition(source: string, where: string, at: Position | undefined): { text: string; expression: Expression } {
  try {
    return { text: source, expression: parseExpression(source) };
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
    throw new CiConfigError(`${where}: invalid expression ${JSON.stringify(source)}: ${error.message}`, at);
  }
}

const ruleKeys = ['if', 'changes', 'exists', 'when', 'allow_failure', 'variables', 'needs', 'start_in', 'interruptible'];

export function parseRules(value: CiValue, owner: string, at: Position | undefined, keys = ruleKeys): RuleSpec[] {
  const where = `${owner}: rules`;
  if (!Array.isArray(value)) throw new CiConfigError(`${where} must be a list`, positionOf(value) ?? at);
  return value.flat(10).map((item) => {
    const itemAt = positionOf(item) ?? at;
    if (!isCiMap(item)) throw new CiConfigError(`${where}: each rule is a mapping (if:, changes:, exists:, when:, ...)`, itemAt);
    for (const key of Object.keys(item)) {
      if (!keys.includes(key)) throw new CiConfigError(`${where}: unknown key ${key}`, keyPosition(item, key));
    }
    const rule: RuleSpec = {
      variables: parseVariables(item.variables, keyPosition(item, 'variables'), `${where}: variables`),
      at: itemAt,
    };
    if (item.if !== undefined) rule.if = parseCondition(text(item.if, `${where}: if`, keyPosition(item, 'if')), `${where}: if`, keyPosition(item, 'if'));
    if (item.changes !== undefined) {
      const changes = item.changes;
      const changesAt = keyPosition(item, 'changes');
      if (isCiMap(changes)) {
        rule.changes = { paths: stringList(changes.paths ?? null, `${where}: changes:paths`, changesAt) };
        if (changes.compare_to !== undefined) rule.changes.compareTo = text(changes.compare_to, `${where}: changes:compare_to`, changesAt);
      } else {
        rule.changes = { paths: stringList(changes, `${where}: changes`, changesAt) };
      }
    }
    if (item.exists !== undefined) {
      const exists = isCiMap(item.exists) ? item.exists.paths ?? null : item.exists;
      rule.exists = stringList(exists, `${where}: exists`, keyPosition(item, 'exists'));
    }
    const when = parseWhen(item.when, `${where}: when`, keyPosition(item, 'when'));
    if (when) rule.when = when;
    const allowFailure = parseAllowFailure(item.allow_failure, `${where}: allow_failure`, keyPosition(item, 'allow_failure'));
    if (allowFailure) rule.allowFailure = allowFailure;
    if (item.needs !== undefined) rule.needs = parseNeeds(item.needs, `${where}: needs`, keyPosition(item, 'needs'));
    return rule;
  });
}

export interface RuleOutcome {
  when: When;
  allowFailure?: AllowFailure;
  variables: Variables;
  needs?: readonly NeedSpec[];
}

/** The first rule whose conditions all hold, or undefined when none does. */
export function evaluateRules(rules: readonly RuleSpec[], inputs: RuleInputs, defaultWhen: When): RuleOutcome | undefined {
  for (const rule of rules) {
    if (rule.if && !evaluateExpression(rule.if.expression, inputs.lookup)) continue;
    if (rule.changes && !inputs.changed(rule.changes.paths, rule.changes.compareTo)) continue;
    if (rule.exists && !inputs.exists(rule.exists)) continue;
    const outcome: RuleOutcome = { when: rule.when ?? defaultWhen, variables: rule.variables };
    if (rule.allowFailure) outcome.allowFailure = rule.allowFailure;
    if (rule.needs) outcome.needs = rule.needs;
    return outcome;
  }
  return undefined;
}

export function parseOnlyExcept(value: CiValue, where: string, at: Position | undefined): OnlyExceptSpec {
  if (typeof value === 'string' || Array.isArray(value)) return { refs: stringList(value, where, at), at };
  if (!isCiMap(value)) throw new CiConfigError(`${where} must be a list of refs or a mapping`, positionOf(value) ?? at);
  const spec: OnlyExceptSpec = { at };
  for (const key of Object.keys(value)) {
    const keyAt = keyPosition(value, key);
    switch (key) {
      case 'refs': spec.refs = stringList(value.refs!, `${where}:refs`, keyAt); break;
      case 'variables':
        spec.variables = stringList(value.variables!, `${where}:variables`, keyAt).map((source) => parseCondition(source, `${where}:variables`, keyAt));
        break;
      case 'changes': spec.changes = stringList(isCiMap(value.changes) ? value.changes.paths ?? null : value.changes!, `${where}:changes`, keyAt); break;
      // Kubernetes integration is never active locally.
      case 'kubernetes': spec.refs = [...(spec.refs ?? []), '/(?!)/']; break;
      default: throw new CiConfigError(`${where}: unknown key ${key}`, keyAt);
    }
  }
  return spec;
}

/** `only:` keyword refs and the pipeline source they stand for. */
const sourceKeywords: Record<string, string> = {
  api: 'api', chat: 'chat', external: 'external', external_pull_requests: 'external_pull_request_event',
  merge_requests: 'merge_request_event', pipelines: 'pipeline', pushes: 'push', schedules: 'schedule', triggers: 'trigger', web: 'web',
};

function refMatches(pattern: string, lookup: (name: string) => string | undefined): boolean {
  const ref = lookup('CI_COMMIT_REF_NAME') ?? '';
  const isTag = Boolean(lookup('CI_COMMIT_TAG'));
  if (pattern === 'branches') return !isTag;
  if (pattern === 'tags') return isTag;
  if (pattern in sourceKeywords) return lookup('CI_PIPELINE_SOURCE') === sourceKeywords[pattern];
  const regex = /^\/(.+)\/([ism]*)$/s.exec(pattern);
  if (regex) {
    try {
      return new RegExp(regex[1]!, regex[2]).test(ref);
    } catch {
      return false;
    }
  }
  // "ref@namespace/project" only matches in that project.
  const at = pattern.lastIndexOf('@');
  if (at > 0) return pattern.slice(0, at) === ref && pattern.slice(at + 1) === lookup('CI_PROJECT_PATH');
  return pattern === ref;
}

/** Every key given has a condition that holds (GitLab's conjoined only/except). */
function onlyExceptHolds(spec: OnlyExceptSpec, inputs: RuleInputs): boolean {
  if (spec.refs && !spec.refs.some((pattern) => refMatches(pattern, inputs.lookup))) return false;
  if (spec.variables && !spec.variables.some((condition) => evaluateExpression(condition.expression, inputs.lookup))) return false;
  if (spec.changes && !inputs.changed(spec.changes)) return false;
  return true;
}

export function onlyExceptInclude(only: OnlyExceptSpec | undefined, except: OnlyExceptSpec | undefined, inputs: RuleInputs): boolean {
  if (!onlyExceptHolds(only ?? { refs: ['branches', 'tags'] }, inputs)) return false;
  return !(except && onlyExceptHolds(except, inputs));
}

export interface WorkflowOutcome {
  run: boolean;
  variables: Variables;
  reason?: string;
}

export function evaluateWorkflow(workflow: CiValue | undefined, at: Position | undefined, inputs: RuleInputs): WorkflowOutcome {
  if (workflow === undefined || workflow === null) return { run: true, variables: new Map() };
  if (!isCiMap(workflow)) throw new CiConfigError('workflow must be a mapping', positionOf(workflow) ?? at);
  if (workflow.rules === undefined) return { run: true, variables: new Map() };
  const rules = parseRules(workflow.rules, 'workflow', keyPosition(workflow, 'rules'), ['if', 'changes', 'exists', 'when', 'variables', 'auto_cancel']);
  const outcome = evaluateRules(rules, inputs, 'always');
  if (!outcome) return { run: false, variables: new Map(), reason: 'no workflow:rules rule matches' };
  if (outcome.when === 'never') return { run: false, variables: new Map(), reason: 'a workflow:rules rule says when: never' };
  return { run: true, variables: outcome.variables };
}
