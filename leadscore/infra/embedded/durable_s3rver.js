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

async function writeAtomically(file, data) {
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.promises.open(temporary, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temporary, file);
  await syncDirectory(path.dirname(file));
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
  if (md5) await writeAtomically(this.getResourcePath(bucket, key, 'object.md5'), md5);
  await writeAtomically(
    this.getResourcePath(bucket, key, 'metadata.json'),
    JSON.stringify(json, null, 2),
  );
};

// Run s3rver's own command line with the options after the package directory.
process.argv = [process.argv[0], path.join(packageDir, 'bin', 's3rver.js'), ...process.argv.slice(3)];
require(path.join(packageDir, 'bin', 's3rver.js'));
