import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { UserError } from '../../common/errors.js';
import { cropPatch, encodePng, listImages, loadImage, resample, thumbnailPng, upscale, writePng, THUMBNAIL_SIDE, type RgbImage } from '../../extension/engine/embed/image.js';

const fixtures = path.join(__dirname, '../fixtures');
const image = (name: string) => path.join(fixtures, 'images', name);

/** Mean absolute difference of two images of one size. */
function meanDiff(a: RgbImage, b: RgbImage): number {
  assert.deepEqual([a.width, a.height], [b.width, b.height]);
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i] - b.data[i]);
  return s / a.data.length;
}

function isUserErrorNaming(file: string, reason: RegExp) {
  return (err: Error) => err instanceof UserError && err.message.startsWith(file) && reason.test(err.message) && !err.message.includes('\n');
}

test('decodes JPEG, PNG, WebP, TIFF and GIF into planar RGB in [0, 1]', async () => {
  for (const name of ['china.jpg', 'chelsea.png', 'formats/chelsea.webp', 'formats/flower.tif', 'formats/rocket-animated.gif']) {
    const img = await loadImage(image(name));
    const meta = await sharp(image(name)).metadata();
    assert.deepEqual([img.width, img.height], [meta.width, meta.height], name);
    assert.equal(img.data.length, 3 * img.width * img.height, name);
    assert.ok(img.data.every((v) => v >= 0 && v <= 1), name);
  }
  // The WebP and TIFF are re-encodings of chelsea.png / flower.jpg: same picture.
  assert.ok(meanDiff(await loadImage(image('formats/chelsea.webp')), await loadImage(image('chelsea.png'))) < 0.03);
  assert.ok(meanDiff(await loadImage(image('formats/flower.tif')), await loadImage(image('flower.jpg'))) < 0.01);
});

test('planar layout: channel planes hold the decoder\'s R, G and B bytes', async () => {
  const file = image('coffee.jpg');
  const img = await loadImage(file);
  const { data: rgb, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  const plane = img.width * img.height;
  for (const i of [0, 1234, plane - 1]) {
    for (let c = 0; c < 3; c++) assert.equal(Math.round(img.data[c * plane + i] * 255), rgb[3 * i + c]);
  }
});

test('EXIF orientation 6 is applied: the rotated file loads upright', async () => {
  const upright = await loadImage(image('china.jpg'));
  const tagged = await loadImage(image('formats/china-exif6.jpg'));
  assert.deepEqual([tagged.width, tagged.height], [256, 171]); // stored as 171x256
  assert.ok(meanDiff(tagged, upright) < 0.03);
});

test('within: scaled down to fit keeping the aspect ratio (EXIF applied first), never enlarged', async () => {
  const small = await loadImage(image('formats/china-exif6.jpg'), { within: 128 });
  assert.deepEqual([small.width, small.height], [128, 86]); // 256 x 171 upright, halved
  assert.ok(meanDiff(small, await loadImage(image('china.jpg'), { width: 128, height: 86 })) < 0.03);
  const same = await loadImage(image('chelsea.png'), { within: 1024 });
  assert.deepEqual([same.width, same.height], [256, 170]);
});

test('animated GIF: the first frame is taken, not the second (its negative)', async () => {
  const first = await loadImage(image('formats/rocket-animated.gif'));
  const rocket = await loadImage(image('rocket.jpg'));
  const negative: RgbImage = { ...rocket, data: rocket.data.map((v) => 1 - v) };
  assert.ok(meanDiff(first, rocket) < 0.05);
  assert.ok(meanDiff(first, negative) > 0.3);
});

test('alpha is flattened onto white; grey expands to three equal channels', async () => {
  const img = await loadImage(image('formats/coffee-alpha.png'));
  const opaque = await loadImage(image('coffee.jpg'));
  const plane = img.width * img.height;
  const y = 80;
  for (let c = 0; c < 3; c++) {
    assert.equal(img.data[c * plane + y * img.width + img.width - 1], 1, 'transparent half is white');
    const left = c * plane + y * img.width + 10;
    assert.ok(Math.abs(img.data[left] - opaque.data[left]) < 0.02, 'opaque half is the photo');
  }
  const grey = await loadImage(image('grass.png'));
  const gp = grey.width * grey.height;
  for (const i of [0, 999, gp - 1]) assert.ok(grey.data[i] === grey.data[gp + i] && grey.data[i] === grey.data[2 * gp + i]);
});

test('resizes to the exact size asked, with the chosen kernel', async () => {
  const near = await loadImage(image('china.jpg'), { width: 224, height: 160, resample: 'nearest' });
  const cubic = await loadImage(image('china.jpg'), { width: 224, height: 160, resample: 'bicubic' });
  assert.deepEqual([near.width, near.height, near.data.length], [224, 160, 3 * 224 * 160]);
  assert.notDeepEqual(near.data, cubic.data);
  // Nearest neighbour only copies source pixels: every output byte exists in the source.
  const source = await sharp(image('china.jpg')).raw().toBuffer();
  const present = new Set<number>();
  for (let i = 0; i + 2 < source.length; i += 3) present.add((source[i] << 16) | (source[i + 1] << 8) | source[i + 2]);
  const plane = 224 * 160;
  for (let i = 0; i < plane; i += 97) {
    const key = (Math.round(near.data[i] * 255) << 16) | (Math.round(near.data[plane + i] * 255) << 8) | Math.round(near.data[2 * plane + i] * 255);
    assert.ok(present.has(key));
  }
});

test('corrupt, non-image and missing files give one-line UserErrors naming the file', async () => {
  const truncated = path.join(fixtures, 'bad/truncated.jpg');
  const text = path.join(fixtures, 'bad/not-an-image.png');
  await assert.rejects(loadImage(truncated), isUserErrorNaming(truncated, /cannot read image/));
  await assert.rejects(loadImage(text), isUserErrorNaming(text, /cannot read image/));
  await assert.rejects(loadImage(path.join(fixtures, 'nope.png')), isUserErrorNaming(path.join(fixtures, 'nope.png'), /cannot read an image file: no such file or folder/));
});

/** A PNG built by hand: IHDR (RGB, given bit depth) + one IDAT of the given filtered rows. */
function handMadePng(width: number, height: number, bitDepth: number, rows: Buffer): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), body])));
    return Buffer.concat([head, Buffer.from(type), body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([bitDepth, 2, 0, 0, 0], 8); // colour type 2 = RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

test('16-bit PNGs are scaled to [0, 1], not clipped', async (t) => {
  const row = Buffer.alloc(1 + 2 * 6); // filter byte, then 2 pixels of 3 big-endian u16
  [65535, 32768, 0, 1000, 16384, 49152].forEach((v, i) => row.writeUInt16BE(v, 1 + 2 * i));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'deep.png');
  await fs.writeFile(file, handMadePng(2, 1, 16, row));
  const img = await loadImage(file);
  // planar: R of both pixels, then G, then B; libvips keeps the high byte, so within 1/255
  const expected = [65535, 1000, 32768, 16384, 0, 49152].map((v) => v / 65535);
  img.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1 / 255 + 1e-6, `value ${i}: ${v} vs ${expected[i]}`));
});

test('an image beyond the pixel limit is refused from its header, before decoding (also for a thumbnail)', async (t) => {
  // The header claims 30000 x 30000 pixels (900 MP) over a few bytes of pixel data.
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'huge.png');
  await fs.writeFile(file, handMadePng(30000, 30000, 8, Buffer.alloc(100)));
  await assert.rejects(loadImage(file), isUserErrorNaming(file, /larger than the 100-megapixel limit/));
  await assert.rejects(thumbnailPng(file), isUserErrorNaming(file, /larger than the 100-megapixel limit/));
});

test('encodePng/writePng round-trip 8-bit values and clamp out-of-range ones', async (t) => {
  const src = await loadImage(image('chelsea.png'));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'out.png');
  await writePng(file, src);
  assert.deepEqual((await loadImage(file)).data, src.data);

  const wild: RgbImage = { width: 2, height: 1, data: Float32Array.of(-0.5, 1.5, 0.5, 2, NaN, 0) };
  const back = await sharp(Buffer.from(await encodePng(wild))).raw().toBuffer();
  // planar in: R = (-0.5, 1.5), G = (0.5, 2), B = (NaN, 0) -> interleaved out, pixel 0 then pixel 1
  assert.deepEqual([...back], [0, 128, 0, 255, 255, 0]);
});

test('listImages walks folders recursively, sorted, by extension, skipping hidden entries', async (t) => {
  const all = await listImages(path.join(fixtures, 'images'));
  assert.ok(all.includes(image('formats/rocket-animated.gif')));
  assert.ok(!all.some((f) => f.endsWith('LICENSE.txt')));
  assert.deepEqual(all, [...all].sort());

  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  for (const f of ['b.JPG', 'a/c.webp', '.hidden/d.png', 'notes.txt', 'a/.e.png']) {
    await fs.mkdir(path.dirname(path.join(tmp, f)), { recursive: true });
    await fs.writeFile(path.join(tmp, f), '');
  }
  assert.deepEqual(await listImages(tmp), [path.join(tmp, 'a/c.webp'), path.join(tmp, 'b.JPG')]);
  assert.deepEqual(await listImages(path.join(tmp, 'b.JPG')), [path.join(tmp, 'b.JPG')]);
  await assert.rejects(listImages(path.join(tmp, 'notes.txt')), /notes\.txt: not an image file/);
  await assert.rejects(listImages(path.join(tmp, 'missing')), /missing: cannot list images: no such file or folder/);
});

test('listImages follows links but walks each real folder once and lists each real file once', async (t) => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  await fs.mkdir(path.join(tmp, 'a/b'), { recursive: true });
  await fs.writeFile(path.join(tmp, 'a/one.png'), '');
  await fs.writeFile(path.join(tmp, 'a/b/two.png'), '');
  await fs.symlink('..', path.join(tmp, 'a/b/up')); // a loop back to a parent
  await fs.symlink(path.join(tmp, 'a'), path.join(tmp, 'a/b/again')); // a second loop, absolute
  await fs.symlink('two.png', path.join(tmp, 'a/b/twin.png')); // a link to a file already listed
  await fs.symlink('nowhere.png', path.join(tmp, 'a/dangling.png'));
  await fs.symlink(path.join(fixtures, 'images/formats'), path.join(tmp, 'linked')); // a link into a data set
  const formats = await listImages(path.join(fixtures, 'images/formats'));
  assert.deepEqual(await listImages(tmp), [
    path.join(tmp, 'a/b/two.png'),
    path.join(tmp, 'a/one.png'),
    ...formats.map((f) => path.join(tmp, 'linked', path.basename(f))),
  ]);
});

test('a folder or a FIFO where an image file should be is refused by type, without blocking', async (t) => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const fifo = path.join(tmp, 'pipe.png');
  execFileSync('mkfifo', [fifo]);
  const folder = path.join(tmp, 'folder.jpg');
  await fs.mkdir(folder);
  await assert.rejects(loadImage(fifo), isUserErrorNaming(fifo, /expected an image file \(a regular file\), found a named pipe \(FIFO\)$/));
  await assert.rejects(loadImage(folder), isUserErrorNaming(folder, /expected an image file \(a regular file\), found a folder$/));
  // Listing names the FIFO (by its name), so that loading it reports it instead of dropping it silently.
  assert.deepEqual(await listImages(tmp), [fifo]);
});

test('thumbnails: longest side 64, aspect kept, never zero-sized, never enlarged, from a file or an engine image', async (t) => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'thumb-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  // the PNG's own header, and the size the function says it has, agree
  const size = async ({ png, width, height }: { png: Uint8Array; width: number; height: number }) => {
    const meta = await sharp(Buffer.from(png)).metadata();
    assert.deepEqual([meta.width, meta.height], [width, height]);
    return [width, height];
  };
  const strip = path.join(tmp, 'strip.png');
  await sharp({ create: { width: 10_000, height: 1, channels: 3, background: '#808080' } }).png().toFile(strip);
  const tall = path.join(tmp, 'tall.png');
  await sharp({ create: { width: 1, height: 10_000, channels: 3, background: '#808080' } }).png().toFile(tall);
  assert.deepEqual(await size(await thumbnailPng(strip)), [THUMBNAIL_SIDE, 1]);
  assert.deepEqual(await size(await thumbnailPng(tall)), [1, THUMBNAIL_SIDE]);
  assert.deepEqual(await size(await thumbnailPng({ data: new Float32Array(3 * 10_000).fill(0.5), width: 10_000, height: 1 })), [THUMBNAIL_SIDE, 1]);

  const photo = await sharp(image('chelsea.png')).metadata();
  const [w, h] = await size(await thumbnailPng(image('chelsea.png')));
  assert.equal(Math.max(w!, h!), THUMBNAIL_SIDE);
  assert.ok(Math.abs(w! / h! - photo.width! / photo.height!) < 0.05, `aspect ${w}x${h} of ${photo.width}x${photo.height}`);
  assert.deepEqual(await size(await thumbnailPng({ data: new Float32Array(3 * 20 * 10), width: 20, height: 10 })), [20, 10]);
});

test('a thumbnail is shrunk while decoding: an 81-megapixel PNG never sits in memory whole', async (t) => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'thumb-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const file = path.join(tmp, 'large.png');
  const side = 9000;
  await sharp({ create: { width: side, height: side, channels: 3, background: '#336699' } }).png({ compressionLevel: 1 }).toFile(file);
  // In a fresh process, so its peak resident memory is this thumbnail's alone.
  const script = `const { thumbnailPng } = require(${JSON.stringify(path.resolve(__dirname, '../../extension/engine/embed/image.ts'))});
    thumbnailPng(${JSON.stringify(file)}).then(() => console.log(process.resourceUsage().maxRSS * 1024));`;
  const peak = Number(execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' }).trim());
  const decoded = side * side * 3; // the 8-bit pixels of a whole decode, before any float copy
  assert.ok(peak < decoded, `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB, a whole decode alone is ${(decoded / 2 ** 20).toFixed(0)} MiB`);
});

test('resample: a square decoding stretched to a 3:2 photo\'s size keeps its gradients and corners', () => {
  // 4 x 4, red rises left to right, green top to bottom, blue constant
  const n = 4;
  const data = new Float32Array(3 * n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    data[y * n + x] = x / (n - 1);
    data[n * n + y * n + x] = y / (n - 1);
    data[2 * n * n + y * n + x] = 0.25;
  }
  const out = resample({ data, width: n, height: n }, 9, 6);
  assert.deepEqual([out.width, out.height, out.data.length], [9, 6, 3 * 9 * 6]);
  const at = (c: number, x: number, y: number): number => out.data[(c * 6 + y) * 9 + x]!;
  assert.equal(at(0, 0, 0), 0);
  assert.equal(at(0, 8, 5), 1);
  assert.equal(at(1, 8, 5), 1);
  for (let x = 1; x < 9; x++) assert.ok(at(0, x, 3) >= at(0, x - 1, 3), 'red never falls left to right');
  for (let y = 1; y < 6; y++) assert.ok(at(1, 4, y) >= at(1, 4, y - 1), 'green never falls top to bottom');
  assert.ok(out.data.subarray(2 * 54).every((v) => Math.abs(v - 0.25) < 1e-6), 'a constant stays constant');
});

test('upscale repeats each pixel factor x factor times; cropPatch takes one cell\'s patch, enlarged the same way', () => {
  // 4 x 2, one value per pixel (its index), the same in the three planes
  const img: RgbImage = { data: Float32Array.from({ length: 24 }, (_, i) => (i % 8) / 8), width: 4, height: 2 };
  const big = upscale(img, 2);
  assert.deepEqual([big.width, big.height], [8, 4]);
  assert.deepEqual(Array.from(big.data.subarray(0, 16)), [0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3].map((v) => v / 8));
  assert.equal(upscale(img, 1), img);
  // 2 x 2 patches: cell (0, 1) holds pixels 2, 3, 6, 7
  const patch = cropPatch(img, 0, 1, 2, 2);
  assert.deepEqual([patch.width, patch.height], [4, 4]);
  assert.deepEqual(Array.from(patch.data.subarray(0, 16)), [2, 2, 3, 3, 2, 2, 3, 3, 6, 6, 7, 7, 6, 6, 7, 7].map((v) => v / 8));
});
