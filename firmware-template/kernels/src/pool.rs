//! MAX_POOL_2D and AVERAGE_POOL_2D, int8 (input and output share scale and zero point, as TFLM requires).
//! TFLM: `reference_integer_ops::MaxPool` / `AveragePool`.

#[derive(Clone, Copy, Debug)]
pub struct Pool2d {
    pub batches: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub filter_h: usize,
    pub filter_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub act_min: i32,
    pub act_max: i32,
}

impl Pool2d {
    fn fits(&self, input: &[i8], output: &[i8]) -> bool {
        self.channels > 0
            && input.len() >= self.batches * self.in_h * self.in_w * self.channels
            && output.len() >= self.batches * self.out_h * self.out_w * self.channels
    }

    /// The window of output pixel (oy, ox) clipped to the input: (y range, x range) in input coordinates.
    #[inline(always)]
    fn window(&self, oy: usize, ox: usize) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
        let y0 = (oy * self.stride_h) as isize - self.pad_h as isize;
        let x0 = (ox * self.stride_w) as isize - self.pad_w as isize;
        let clip = |start: isize, len: usize, size: usize| {
            let lo = start.max(0) as usize;
            let hi = (start + len as isize).min(size as isize).max(0) as usize;
            lo..hi.max(lo)
        };
        (clip(y0, self.filter_h, self.in_h), clip(x0, self.filter_w, self.in_w))
    }

    /// For every output value: fold `add` over its window's taps inside the input (one channel), starting
    /// from `init`; `finish(acc, taps)` gives the value before the activation clamp, or None to stop there
    /// (leaving the rest of the output as it was).
    #[inline(always)]
    fn reduce(
        &self,
        input: &[i8],
        output: &mut [i8],
        init: i32,
        add: impl Fn(i32, i8) -> i32,
        finish: impl Fn(i32, i32) -> Option<i32>,
    ) {
        if !self.fits(input, output) {
            return;
        }
        let in_size = self.in_h * self.in_w * self.channels;
        let out_size = self.out_h * self.out_w * self.channels;
        let batches = input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(self.batches);
        for (in_batch, out_batch) in batches {
            for (pixel, out_px) in out_batch.chunks_exact_mut(self.channels).enumerate() {
                let (ys, xs) = self.window(pixel / self.out_w, pixel % self.out_w);
                let taps = (ys.len() * xs.len()) as i32;
                for (ch, o) in out_px.iter_mut().enumerate() {
                    let mut acc = init;
                    for y in ys.clone() {
                        for x in xs.clone() {
                            if let Some(v) = in_batch.get((y * self.in_w + x) * self.channels + ch) {
                                acc = add(acc, *v);
                            }
                        }
                    }
                    let Some(value) = finish(acc, taps) else { return };
                    *o = value.max(self.act_min).min(self.act_max) as i8;
                }
            }
        }
    }
}

/// Maximum over each window (padding never wins), clamped to the fused activation. Tap by tap over whole
/// pixels (all channels contiguous), with the output pixel as the running maximum.
pub fn max_pool2d_s8(p: &Pool2d, input: &[i8], output: &mut [i8]) {
    if !p.fits(input, output) {
        return;
    }
    let c = p.channels;
    let in_size = p.in_h * p.in_w * c;
    let out_size = p.out_h * p.out_w * c;
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        for (pixel, out_px) in out_batch.chunks_exact_mut(c).enumerate() {
            let (ys, xs) = p.window(pixel / p.out_w, pixel % p.out_w);
            out_px.fill(i8::MIN);
            for y in ys {
                let row = y * p.in_w;
                for x in xs.clone() {
                    let start = (row + x) * c;
                    if let Some(tap) = in_batch.get(start..start + c) {
                        for (o, &v) in out_px.iter_mut().zip(tap) {
                            *o = (*o).max(v);
                        }
                    }
                }
            }
            for o in out_px.iter_mut() {
                *o = (*o as i32).max(p.act_min).min(p.act_max) as i8;
            }
        }
    }
}

/// Mean over each window's taps inside the input, rounded half away from zero, clamped.
pub fn average_pool2d_s8(p: &Pool2d, input: &[i8], output: &mut [i8]) {
    p.reduce(input, output, 0, |acc, v| acc + v as i32, |acc, count| {
        if count == 0 {
            return None; // TFLM's kernel reports an error and leaves the output as it was
        }
        Some(if acc > 0 { (acc + count / 2) / count } else { (acc - count / 2) / count })
    });
}

