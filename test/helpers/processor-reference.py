# The reference the model-family tests compare against: transformers' slow image processors
# (SiglipImageProcessor, CLIPImageProcessor, BitImageProcessor) written out with NumPy and PIL, as
# they process a photo: load_image (EXIF transpose), convert_to_rgb (alpha composited on white),
# resize on the 8-bit image with PIL (size {height, width}, or {shortest_edge: S}: the long side
# int(S * long / short)), center_crop (top = (h - ch) // 2, left = (w - cw) // 2, zero padding
# where the crop overhangs), rescale (float64 then float32), normalize, channels first.
# With a patch size, also the embeddings of the test models: the orthonormal 2-D DCT of each patch
# (what test/helpers/siglip-model.ts's towers compute), raster order, c*p*p + u*p + v.
#   python3 processor-reference.py '[[<spec>, "out.npy"], ...]' IMAGE...   (one run for several specs)
import json
import math
import sys

import numpy as np
from PIL import Image, ImageOps


def load(path):
    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode == 'RGB':
        return image
    rgba = image.convert('RGBA')
    background = Image.new('RGBA', rgba.size, (255, 255, 255))
    return Image.alpha_composite(background, rgba).convert('RGB')


def resize(image, spec):
    size = spec['size']
    if 'shortest_edge' in size:
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        s = size['shortest_edge']
        new_long = int(s * long / short)
        height, width = (new_long, s) if w <= h else (s, new_long)
    else:
        height, width = size['height'], size['width']
    return image.resize((width, height), resample=spec['resample'], reducing_gap=None)


def center_crop(a, ch, cw):
    h, w = a.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0 and top + ch <= h and left + cw <= w:
        return a[top:top + ch, left:left + cw]
    nh, nw = max(ch, h), max(cw, w)
    padded = np.zeros((nh, nw) + a.shape[2:], dtype=a.dtype)
    tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
    padded[tp:tp + h, lp:lp + w] = a
    top, left = top + tp, left + lp
    return padded[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]


def pixel_values(path, spec):
    a = np.array(resize(load(path), spec))
    if spec.get('crop'):
        a = center_crop(a, *spec['crop'])
    a = (a.astype(np.float64) * spec['rescale']).astype(np.float32)
    a = (a - np.array(spec['mean'], dtype=np.float32)) / np.array(spec['std'], dtype=np.float32)
    return a.transpose(2, 0, 1)


def dct_embeddings(x, p):
    u = np.arange(p)[:, None]
    basis = np.sqrt(np.where(u == 0, 1.0, 2.0) / p) * np.cos(np.pi * (2 * np.arange(p)[None, :] + 1) * u / (2 * p))
    c, h, w = x.shape
    patches = x.astype(np.float64).reshape(c, h // p, p, w // p, p).transpose(1, 3, 0, 2, 4)
    coeffs = basis @ patches @ basis.T  # [u, v] = sum over rows x, columns y of B[u, x] P[x, y] B[v, y]
    return coeffs.reshape((h // p) * (w // p), c * p * p).astype(np.float32)


def main():
    for spec, file in json.loads(sys.argv[1]):
        out = [pixel_values(path, spec) for path in sys.argv[2:]]
        if spec.get('patch'):
            out = [dct_embeddings(x, spec['patch']) for x in out]
        np.save(file, np.stack(out))


main()
