import CKilnRT
import XCTest

/// The C runtime's convolution from the image (kiln_conv2d_f32: the AVX-512 kernel where the CPU
/// has it; kiln_conv2d_f32_portable everywhere) and its filter gradient
/// (kiln_conv2d_filter_gradient_f32 and its portable twin) against the definitions in Double:
/// every geometry the patches op allows, a range of rows, padded row strides left untouched.
final class RuntimeConvolutionTests: XCTestCase {
    struct Geometry: CustomStringConvertible {
        var n, h, w, c: Int
        var kh, kw, sy, sx, dy, dx, py, px: Int
        var oh, ow, co: Int
        var description: String { "x [\(n),\(h),\(w),\(c)] window \(kh)x\(kw) strides \(sy),\(sx) dilations \(dy),\(dx) pad \(py),\(px) -> [\(oh),\(ow),\(co)]" }
    }

    /// Uniform floats in [-1, 1) from a linear congruential sequence.
    struct Draws {
        var seed: UInt64
        mutating func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(seed >> 11) / 9007199254740992.0 * 2 - 1)
        }
    }

    static let geometries = [
        // A 3x3 SAME convolution to 32 channels (the 8x2 tile), and to 40 (a ragged second strip pair).
        Geometry(n: 3, h: 8, w: 8, c: 16, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 8, ow: 8, co: 32),
        Geometry(n: 2, h: 7, w: 5, c: 3, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 7, ow: 5, co: 40),
        // Winograd F(4x4, 3x3) where the window is 3x3 of unit stride (the 8x8 images above too):
        // output sizes not a multiple of 4 (a tile's last rows or columns outside the output),
        // channels not a multiple of 16, a ragged strip, no padding, padding past the window's
        // reach, the most input channels it takes.
        Geometry(n: 2, h: 7, w: 5, c: 9, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 7, ow: 5, co: 40),
        Geometry(n: 2, h: 6, w: 9, c: 20, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 0, px: 0, oh: 4, ow: 7, co: 16),
        Geometry(n: 1, h: 5, w: 5, c: 8, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 2, px: 2, oh: 7, ow: 7, co: 24),
        Geometry(n: 2, h: 4, w: 6, c: 64, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 4, ow: 6, co: 16),
        // F(2x2, 3x3) where 2x2 tiles take fewer products (6x6 and 2x6 outputs): a ragged strip,
        // an odd channel count, three strips.
        Geometry(n: 3, h: 6, w: 6, c: 12, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 6, ow: 6, co: 20),
        Geometry(n: 4, h: 2, w: 6, c: 17, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 2, ow: 6, co: 33),
        // Under 16 channels (the 16x1 tile, masked), strides and dilations, padding past the image.
        Geometry(n: 2, h: 9, w: 11, c: 5, kh: 2, kw: 3, sy: 2, sx: 1, dy: 2, dx: 3, py: 3, px: 0, oh: 6, ow: 5, co: 7),
        Geometry(n: 1, h: 4, w: 4, c: 1, kh: 5, kw: 5, sy: 1, sx: 1, dy: 1, dx: 1, py: 4, px: 4, oh: 8, ow: 8, co: 16),
        // One channel in (a grey image, the digits CNN's first layer), and an image of more
        // positions than the few-channel gradient takes in one block.
        Geometry(n: 3, h: 8, w: 8, c: 1, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 8, ow: 8, co: 16),
        Geometry(n: 2, h: 20, w: 19, c: 2, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 20, ow: 19, co: 5),
        // No channels in: every output is zero.
        Geometry(n: 1, h: 3, w: 3, c: 0, kh: 3, kw: 3, sy: 1, sx: 1, dy: 1, dx: 1, py: 1, px: 1, oh: 3, ow: 3, co: 17),
    ]

    func testEveryRowMatchesTheDefinitionAndNothingElseIsWritten() {
        var draws = Draws(seed: 7)
        let draw = { draws.next() }
        for g in Self.geometries {
            let x = (0..<(g.n * g.h * g.w * g.c)).map { _ in draw() }
            let k = g.kh * g.kw * g.c, ldw = g.co + 3, ldc = g.co + 2, rows = g.n * g.oh * g.ow
            let w = (0..<(max(k, 1) * ldw)).map { _ in draw() }
            // Every row, and rows [first, first + count): a range that starts and ends inside an image.
            let ranges = [(0, rows), (rows / 5, rows - rows / 5 - rows / 7)]
            for (first, count) in ranges {
            for (name, conv) in [("kiln_conv2d_f32", kiln_conv2d_f32), ("kiln_conv2d_f32_portable", kiln_conv2d_f32_portable)] {
                var out = [Float](repeating: .nan, count: rows * ldc)
                conv(x, Int64(g.h), Int64(g.w), Int64(g.c), Int64(g.oh), Int64(g.ow), Int64(g.kh), Int64(g.kw), Int64(g.sy), Int64(g.sx),
                     Int64(g.dy), Int64(g.dx), Int64(g.py), Int64(g.px), w, Int64(ldw), Int64(g.co), &out, Int64(ldc), Int64(first), Int64(count))
                for p in 0..<rows {
                    let (ox, oy, n) = (p % g.ow, (p / g.ow) % g.oh, p / g.ow / g.oh)
                    for j in 0..<ldc {
                        let got = out[p * ldc + j]
                        guard p >= first, p < first + count, j < g.co else {
                            XCTAssertTrue(got.isNaN, "\(name) \(g): row \(p) column \(j) written")
                            continue
                        }
                        var sum = 0.0, mag = 0.0
                        for ky in 0..<g.kh { for kx in 0..<g.kw {
                            let iy = oy * g.sy - g.py + ky * g.dy, ix = ox * g.sx - g.px + kx * g.dx
                            guard iy >= 0, iy < g.h, ix >= 0, ix < g.w else { continue }
                            for ci in 0..<g.c {
                                let term = Double(x[((n * g.h + iy) * g.w + ix) * g.c + ci]) * Double(w[((ky * g.kw + kx) * g.c + ci) * ldw + j])
                                sum += term
                                mag += abs(term)
                            }
                        } }
                        XCTAssertLessThanOrEqual(abs(Double(got) - sum), 1.2e-7 * mag * Double(k + 1), "\(name) \(g): rows from \(first): row \(p) column \(j)")
                    }
                }
            }
            }
        }
    }

    func testFilterGradientOfEveryRangeOfRowsIsAddedAsDefinedAndNothingElseIsWritten() {
        var draws = Draws(seed: 11)
        let draw = { draws.next() }
        for g in Self.geometries {
            let x = (0..<(g.n * g.h * g.w * g.c)).map { _ in draw() }
            let k = g.kh * g.kw * g.c, rows = g.n * g.oh * g.ow, ldg = g.co + 1, lddw = g.co + 3
            let dy = (0..<(rows * ldg)).map { _ in draw() }
            // The gradient is added to what dw holds: finite values in its columns, NaN past them.
            let prior = (0..<(k * lddw)).map { $0 % lddw < g.co ? draw() : .nan }
            for (first, count) in [(0, rows), (rows / 5, rows - rows / 5 - rows / 7)] {
            for (name, grad) in [("kiln_conv2d_filter_gradient_f32", kiln_conv2d_filter_gradient_f32),
                                 ("kiln_conv2d_filter_gradient_f32_portable", kiln_conv2d_filter_gradient_f32_portable)] {
                var dw = prior
                grad(x, Int64(g.h), Int64(g.w), Int64(g.c), Int64(g.oh), Int64(g.ow), Int64(g.kh), Int64(g.kw), Int64(g.sy), Int64(g.sx),
                     Int64(g.dy), Int64(g.dx), Int64(g.py), Int64(g.px), dy, Int64(ldg), Int64(g.co), &dw, Int64(lddw), Int64(first), Int64(count))
                for ky in 0..<g.kh { for kx in 0..<g.kw { for ci in 0..<g.c { for j in 0..<lddw {
                    let at = ((ky * g.kw + kx) * g.c + ci) * lddw + j
                    guard j < g.co else {
                        XCTAssertTrue(dw[at].isNaN, "\(name) \(g): dw row \(at / lddw) column \(j) written")
                        continue
                    }
                    var sum = Double(prior[at]), mag = abs(sum)
                    for p in first..<(first + count) {
                        let (ox, oy, n) = (p % g.ow, (p / g.ow) % g.oh, p / g.ow / g.oh)
                        let iy = oy * g.sy - g.py + ky * g.dy, ix = ox * g.sx - g.px + kx * g.dx
                        guard iy >= 0, iy < g.h, ix >= 0, ix < g.w else { continue }
                        let term = Double(x[((n * g.h + iy) * g.w + ix) * g.c + ci]) * Double(dy[p * ldg + j])
                        sum += term
                        mag += abs(term)
                    }
                    XCTAssertLessThanOrEqual(abs(Double(dw[at]) - sum), 1.2e-7 * mag * Double(count + 1),
                                             "\(name) \(g): rows from \(first): dw row \(at / lddw) column \(j)")
                } } } }
            }
            }
        }
    }
}
