import Foundation
import KilnIR

/// `kiln inspect` on a .npy file: dtype, shape, min, max and mean (numpy's, NaN-propagating).
enum NPYInspection {
    static func report(path: String) throws -> InspectReport {
        let t = try NPY.read(path: path)
        let shape = Shape(t.shape).description
        var fields: [String: Any] = ["dtype": t.dtype.name, "shape": t.shape, "elements": t.elementCount]
        if let s = TensorStatistics(t) { fields.merge(s.json) { $1 } }
        return InspectReport(file: path, kind: .npy, lines: ["\(path): .npy array, \(t.dtype.name) \(shape), \(t.elementCount) element\(t.elementCount == 1 ? "" : "s")",
                                                              TensorStatistics.line(t)], fields: fields)
    }
}
