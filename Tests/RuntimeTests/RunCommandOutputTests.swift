import Foundation
import XCTest
import Kiln

/// What `kiln run` prints: numpy's spelling of special values, and the cache line of KILN_DEBUG.
final class RunCommandOutputTests: KilnBinaryTestCase {
    func testNaNAndInfinitiesPrintAsNumpyPrintsThem() throws {
        let g = Graph()
        let a = try g.placeholder(.float32, shape: [nil], name: "a")
        _ = try g.realDiv(a, a, name: "ratio")                           // inf / inf: x86's default NaN, sign bit set
        _ = try g.multiply(a, try g.constant(-1 as Float), name: "negated")
        try g.writeGraphDef(toFile: path("g.pbtxt"))
        try NPY.write(Tensor(shape: [3], scalars: [2, 1, .infinity] as [Float]), path: path("a.npy"))
        let r = try run(["run", path("g.pbtxt"), "--feed=a=\(path("a.npy"))", "--fetch", "ratio", "negated"], environment: ["KILN_DEBUG": "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "ratio float32 [3] min=nan max=nan mean=nan\nnegated float32 [3] min=-inf max=-1 mean=-inf\n")
        XCTAssertTrue(r.stderr.contains("executable cache: 1 of 64 cached, 1 compiled, 0 hits, 0 evicted"), r.stderr)
    }
}
