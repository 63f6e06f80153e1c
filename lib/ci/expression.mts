// The expressions of `rules: if:`, `workflow: rules: if:` and
// `only/except: variables:`, as GitLab's Gitlab::Ci::Pipeline::Expression
// reads them: $VARIABLES, "strings" or 'strings', /regular expressions/ with
// i, m, s flags, null, the operators == != =~ !~ (tightest), && and then ||,
// and parentheses. A variable that is not defined is null; a value is true
// when it is a non-empty string, a match, or a true comparison.

export type Expression =
  | { kind: 'variable'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'pattern'; source: string; flags: string }
  | { kind: 'null' }
  | { kind: 'compare'; op: '==' | '!=' | '=~' | '!~'; left: Expression; right: Expression }
  | { kind: 'and' | 'or'; left: Expression; right: Expression };

type Token =
  | { type: 'variable'; name: string; at: number }
  | { type: 'string'; value: string; at: number }
  | { type: 'pattern'; source: string; flags: string; at: number }
  | { type: 'null'; at: number }
  | { type: 'op'; op: '==' | '!=' | '=~' | '!~' | '&&' | '||'; at: number }
  | { type: '(' | ')'; at: number };

/** Thrown for bad syntax; `column` is 1-based within the expression. */
export class ExpressionError extends Error {
  readonly column: number;

  constructor(message: string, column: number) {
    super(message);
    this.column = column;
    this.name = 'ExpressionError';
  }
}

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (/\s/.test(char)) {
      i++;
      continue;
    }
    const at = i + 1;
    const rest = text.slice(i);
    let match: RegExpExecArray | null;
    if ((match = /^\$\{(\w+)\}|^\$(\w+)/.exec(rest))) {
      tokens.push({ type: 'variable', name: match[1] ?? match[2]!, at });
      i += match[0].length;
    } else if (char === '"' || char === "'") {
      const end = text.indexOf(char, i + 1);
      if (end === -1) throw new ExpressionError(`unterminated string starting at column ${at}`, at);
      tokens.push({ type: 'string', value: text.slice(i + 1, end), at });
      i = end + 1;
    } else if (char === '/') {
      let end = i + 1;
      while (end < text.length && text[end] !== '/') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length || end === i + 1) throw new ExpressionError(`unterminated regular expression starting at column ${at}`, at);
      const flags = /^[ismU]*/.exec(text.slice(end + 1))![0];
      tokens.push({ type: 'pattern', source: text.slice(i + 1, end), flags, at });
      i = end + 1 + flags.length;
    } else if ((match = /^null\b/.exec(rest))) {
      tokens.push({ type: 'null', at });
      i += 4;
    } else if ((match = /^(==|!=|=~|!~|&&|\|\|)/.exec(rest))) {
      tokens.push({ type: 'op', op: match[1] as '==', at });
      i += 2;
    } else if (char === '(' || char === ')') {
      tokens.push({ type: char, at });
      i++;
    } else {
      throw new ExpressionError(`unexpected ${JSON.stringify(rest.slice(0, 10))} at column ${at}`, at);
    }
  }
  return tokens;
}

export function parseExpression(text: string): Expression {
  const tokens = tokenize(text);
  let position = 0;
  const peek = (): Token | undefined => tokens[position];
  const columnHere = (): number => peek()?.at ?? text.length + 1;
  const fail = (what: string): never => {
    throw new ExpressionError(`${what} at column ${columnHere()}`, columnHere());
  };

  const parseOr = (): Expression => {
    let left = parseAnd();
    for (let token = peek(); token?.type === 'op' && token.op === '||'; token = peek()) {
      position++;
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const parseAnd = (): Expression => {
    let left = parseComparison();
    for (let token = peek(); token?.type === 'op' && token.op === '&&'; token = peek()) {
      position++;
      left = { kind: 'and', left, right: parseComparison() };
    }
    return left;
  };
  const parseComparison = (): Expression => {
    const left = parsePrimary();
    const token = peek();
    if (token?.type === 'op' && token.op !== '&&' && token.op !== '||') {
      position++;
      return { kind: 'compare', op: token.op, left, right: parsePrimary() };
    }
    return left;
  };
  const parsePrimary = (): Expression => {
    const token = peek();
    if (!token) return fail('expression ends early');
    position++;
    switch (token.type) {
      case 'variable': return { kind: 'variable', name: token.name };
      case 'string': return { kind: 'string', value: token.value };
      case 'pattern':
        try {
          compilePattern(token.source, token.flags);
        } catch (error) {
          throw new ExpressionError(`${(error as Error).message} at column ${token.at}`, token.at);
        }
        return { kind: 'pattern', source: token.source, flags: token.flags };
      case 'null': return { kind: 'null' };
      case '(': {
        const inner = parseOr();
        if (peek()?.type !== ')') fail('missing )');
        position++;
        return inner;
      }
      default:
        position--;
        return fail(`unexpected ${token.type === 'op' ? token.op : token.type}`);
    }
  };

  if (tokens.length === 0) fail('empty expression');
  const expression = parseOr();
  if (position < tokens.length) fail('unexpected text');
  return expression;
}

type Value = string | null | boolean | RegExp;

export type Lookup = (name: string) => string | undefined;

export function evaluateExpression(expression: Expression, lookup: Lookup): boolean {
  return isTrue(evaluate(expression, lookup));
}

function isTrue(value: Value): boolean {
  if (typeof value === 'string') return value !== '';
  if (value instanceof RegExp) return true;
  return value === true;
}

function evaluate(expression: Expression, lookup: Lookup): Value {
  switch (expression.kind) {
    case 'variable': return lookup(expression.name) ?? null;
    case 'string': return expression.value;
    case 'null': return null;
    case 'pattern': return compilePattern(expression.source, expression.flags);
    case 'and': return isTrue(evaluate(expression.left, lookup)) && isTrue(evaluate(expression.right, lookup));
    case 'or': return isTrue(evaluate(expression.left, lookup)) || isTrue(evaluate(expression.right, lookup));
    case 'compare': {
      const left = evaluate(expression.left, lookup);
      const right = evaluate(expression.right, lookup);
      switch (expression.op) {
        case '==': return same(left, right);
        case '!=': return !same(left, right);
        case '=~': return matches(left, right);
        case '!~': return !matches(left, right);
      }
    }
  }
}

function same(left: Value, right: Value): boolean {
  const text = (value: Value) => (value instanceof RegExp ? `/${value.source}/` : value);
  return text(left) === text(right);
}

/** A variable on the right holding "/re/flags" is a pattern (GitLab 15.0 on); null never matches. */
function matches(left: Value, right: Value): boolean {
  let pattern: RegExp | undefined;
  if (right instanceof RegExp) pattern = right;
  else if (typeof right === 'string') {
    const written = /^\/(.+)\/([ismU]*)$/s.exec(right);
    if (written) pattern = compilePattern(written[1]!, written[2]!);
  }
  if (!pattern || typeof left !== 'string') return false;
  return pattern.test(left);
}

const compiled = new Map<string, RegExp>();

/** RE2's flags i, m, s carry over; U (ungreedy) has no JavaScript equivalent and is dropped. */
export function compilePattern(source: string, flags: string): RegExp {
  const key = `${flags}/${source}`;
  let regex = compiled.get(key);
  if (!regex) {
    try {
      regex = new RegExp(source, [...new Set(flags.replace(/U/g, ''))].join(''));
    } catch (error) {
      throw new ExpressionError(`invalid regular expression /${source}/: ${(error as Error).message}`, 1);
    }
    compiled.set(key, regex);
  }
  return regex;
}
