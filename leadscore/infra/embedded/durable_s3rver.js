#!/usr/bin/env node
// s3rver with crash-safe writes, for leadscore's durable embedded broker.
//
// Usage: node durable_s3rver.js S3RVER_PACKAGE_DIR [s3rver options...]
//
// s3rver answers a PUT before the object is on disk (it starts an asynchronous write and
// replies) and writes in place, so a kill -9 can lose an acknowledged object or leave it
// truncated: Tansu then reads an empty watermark and starts the partition's offsets again
// from 0, overwriting records. Here every object is written to a temporary file, flushed
// (fsync), renamed over the old one and its directory flushed, all before the reply: an
// object is either its old or its new content, and an acknowledged one survives a kill
// of the process or of the machine.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const packageDir = process.argv[2];
if (!packageDir) {
  console.error('usage: durable_s3rver.js S3RVER_PACKAGE_DIR [s3rver options...]');
  process.exit(2);
}
const FilesystemStore = require(path.join(packageDir, 'lib', 'stores', 'filesystem'));
const S3Object = require(path.join(packageDir, 'lib', 'models', 'object'));

async function syncDirectory(directory) {
  const handle = await fs.promises.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Every write is a rename of a complete file (never a half-written one). ``flush`` also
// puts it on disk before the reply (fsync of the file and of its directory): for the object
// itself. Its checksum and metadata files are derived (s3rver recomputes a missing checksum;
// the metadata holds the content type), so they skip the fsyncs, which cost the most.
async function writeAtomically(file, data, flush = true) {
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.promises.open(temporary, 'w');
  try {
    await handle.writeFile(data);
    if (flush) await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temporary, file);
  if (flush) await syncDirectory(path.dirname(file));
}

function collect(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', chunk => chunks.push(Buffer.from(chunk)));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const content = Buffer.isBuffer(object.content)
    ? object.content
    : await collect(object.content);
  const md5 = crypto.createHash('md5').update(content).digest('hex');
  // A stale checksum is worse than none: s3rver recomputes a missing one when read.
  await fs.promises.rm(`${objectPath}.md5`, { force: true });
  await writeAtomically(objectPath, content);
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size: content.length, md5 };
};

FilesystemStore.prototype.putMetadata = async function putMetadata(bucket, key, metadata, md5) {
  const json = {};
  for (const [name, value] of Object.entries(metadata || {})) {
    if (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')) {
      json[name] = value;
    }
  }
  if (md5) await writeAtomically(this.getResourcePath(bucket, key, 'object.md5'), md5, false);
  await writeAtomically(
    this.getResourcePath(bucket, key, 'metadata.json'),
    JSON.stringify(json, null, 2),
    false,
  );
};

// Conditional writes, as S3 does them: Tansu creates a partition's watermark with
// "If-None-Match: *" and updates it with "If-Match: <etag>", and relies on a refusal (412)
// to learn that the object exists or changed. s3rver ignores both headers, so a broker
// restarted on old data overwrote each watermark on its first write and started the
// partition's offsets again from 0. Every request on one key runs alone, so the check and
// the write are one step, and a read never sees a write half done.
const objects = require(path.join(packageDir, 'lib', 'controllers', 'object'));
const S3Error = require(path.join(packageDir, 'lib', 'models', 'error'));
const queues = new Map();

function oneAtATime(handler) {
  return async function serialized(ctx) {
    const key = `${ctx.params.bucket}/${ctx.params.key}`;
    const previous = queues.get(key) || Promise.resolve();
    let release;
    const mine = new Promise(resolve => (release = resolve));
    const tail = previous.then(() => mine);
    queues.set(key, tail);
    await previous;
    try {
      return await handler(ctx);
    } finally {
      release();
      if (queues.get(key) === tail) queues.delete(key);
    }
  };
}

function unquoted(etag) {
  return String(etag || '').replace(/"/g, '').replace(/^W\//, '');
}

const putObject = objects.putObject;
objects.putObject = oneAtATime(async function conditionalPut(ctx) {
  const ifNoneMatch = ctx.headers['if-none-match'];
  const ifMatch = ctx.headers['if-match'];
  if (ifNoneMatch !== undefined || ifMatch !== undefined) {
    let existing = null;
    try {
      existing = await ctx.store.getMetadata(ctx.params.bucket, ctx.params.key);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    const refused =
      (ifNoneMatch !== undefined &&
        existing !== null &&
        (ifNoneMatch.trim() === '*' || unquoted(ifNoneMatch) === unquoted(existing.etag))) ||
      (ifMatch !== undefined &&
        (existing === null ||
          (ifMatch.trim() !== '*' && unquoted(ifMatch) !== unquoted(existing.etag))));
    if (refused) {
      throw new S3Error(
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: ifNoneMatch !== undefined ? 'If-None-Match' : 'If-Match' },
      );
    }
  }
  return putObject(ctx);
});
for (const name of ['getObject', 'deleteObject', 'putObjectCopy']) {
  objects[name] = oneAtATime(objects[name]);
}

// Run s3rver's own command line with the options after the package directory.
process.argv = [process.argv[0], path.join(packageDir, 'bin', 's3rver.js'), ...process.argv.slice(3)];
require(path.join(packageDir, 'bin', 's3rver.js'));
