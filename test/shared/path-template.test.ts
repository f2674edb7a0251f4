/**
 * grpc-transcode's path_template (shared/path-template.ts): which templates compile, and which paths fit one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compilePathTemplate, type PathTemplate } from '../../shared/path-template.ts';

function compiled(template: string): PathTemplate {
  const result = compilePathTemplate(template);
  assert.ok(typeof result !== 'string', result as string);
  return result;
}

describe('path_template', () => {
  test('fields, literals and * segments; values percent-decoded; the query ignored', () => {
    const template = compiled('/v1/users/{user.id}/*/posts/{post_id}');
    assert.deepEqual(template.match('/v1/users/a%20b/anything/posts/7?x=1'), [
      ['user.id', 'a b'],
      ['post_id', '7'],
    ]);
  });

  test('a path that does not fit: other literals, another segment count, an empty segment, bad percent-encoding', () => {
    const template = compiled('/v1/users/{id}');
    for (const path of ['/v2/users/1', '/v1/users', '/v1/users/1/more', '/v1/users/', '/v1/users/%E0%A4%A']) assert.equal(template.match(path), undefined, path);
  });

  test('templates refused: no leading slash, a field twice, a segment that is neither literal, * nor {field}', () => {
    for (const template of ['v1/{id}', '/a/{id}/{id}', '/a/{id-x}', '/a/b{id}', '/a/{}']) assert.equal(typeof compilePathTemplate(template), 'string', template);
  });
});
