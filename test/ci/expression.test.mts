// rules: if: expressions, as a table: text, variables, result.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateExpression, ExpressionError, parseExpression } from '../../lib/ci/expression.mts';

const variables: Record<string, string> = {
  BRANCH: 'feature/login', MAIN: 'main', EMPTY: '', TAG: 'v1.2.3', PATTERN: '/^feature/', NOT_PATTERN: 'feature', QUOTE: "it's",
};
const lookup = (name: string) => variables[name];

const cases: Array<[string, boolean]> = [
  ['$BRANCH', true],
  ['$EMPTY', false],
  ['$UNDEFINED', false],
  ['${BRANCH}', true],
  ['$MAIN == "main"', true],
  ["$MAIN == 'main'", true],
  ['$MAIN != "main"', false],
  ['"main" == $MAIN', true],
  ['$MAIN == $MAIN', true],
  ['$MAIN == $BRANCH', false],
  ['$UNDEFINED == null', true],
  ['$EMPTY == null', false],
  ['$EMPTY == ""', true],
  ['$MAIN != null', true],
  ['null == null', true],
  ['$BRANCH =~ /^feature\\//', true],
  ['$BRANCH =~ /^FEATURE/', false],
  ['$BRANCH =~ /^FEATURE/i', true],
  ['$BRANCH !~ /^feature/', false],
  ['$UNDEFINED =~ /.*/', false],
  ['$UNDEFINED !~ /.*/', true],
  ['$TAG =~ /^v\\d+\\.\\d+/', true],
  ['$BRANCH =~ $PATTERN', true],
  ['$BRANCH =~ $NOT_PATTERN', false],
  ['$MAIN == "main" && $TAG', true],
  ['$MAIN == "main" && $EMPTY', false],
  ['$EMPTY || $TAG', true],
  ['$EMPTY || $UNDEFINED', false],
  // && binds tighter than ||.
  ['$TAG || $EMPTY && $UNDEFINED', true],
  ['($TAG || $EMPTY) && $UNDEFINED', false],
  ['$MAIN == "x" || ($BRANCH =~ /login$/ && $TAG != null)', true],
  ['(($MAIN == "main"))', true],
  ['"literal"', true],
  ['""', false],
  ['$QUOTE == "it\'s"', true],
  ['$A_B_1 == null', true],
];

for (const [text, expected] of cases) {
  test(`${text} is ${expected}`, () => {
    assert.equal(evaluateExpression(parseExpression(text), lookup), expected);
  });
}

const errors: Array<[string, RegExp]> = [
  ['', /empty expression/],
  ['$A ==', /ends early/],
  ['$A == "x" &&', /ends early/],
  ['($A == "x"', /missing \)/],
  ['$A == "x")', /unexpected text at column 10/],
  ['$A = "x"', /unexpected "= \\"x\\"" at column 4/],
  ['$A == "x', /unterminated string/],
  ['$A =~ /x', /unterminated regular expression/],
  ['$A =~ /(/', /invalid regular expression/],
  ['$A $B', /unexpected text/],
  ['&& $A', /unexpected &&/],
];

for (const [text, message] of errors) {
  test(`${JSON.stringify(text)} is refused`, () => {
    assert.throws(() => parseExpression(text), (error: Error) => error instanceof ExpressionError && message.test(error.message));
  });
}
