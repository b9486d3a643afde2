import XCTest
import KilnIR

// Helpers every test target uses. Test targets cannot depend on one another, so they share
// this small library instead of each keeping a copy.

/// Runs `body`, which must throw a KilnError with `code` whose message contains every string in
/// `contains`; returns the error so a test can check more.
@discardableResult
public func assertKilnError<T>(_ code: KilnError.Code, contains: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> T) -> KilnError? {
    do {
        let v = try body()
        XCTFail("expected a \(code) error, got \(v)", file: file, line: line)
    } catch let e as KilnError {
        XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
        for s in contains {
            XCTAssertTrue(e.message.contains(s), "message \"\(e.message)\" does not mention \"\(s)\"", file: file, line: line)
        }
        return e
    } catch {
        XCTFail("expected a KilnError, got \(error)", file: file, line: line)
    }
    return nil
}

public func f32(_ shape: Int...) -> TensorType { TensorType(.float32, shape) }
public func i32(_ shape: Int...) -> TensorType { TensorType(.int32, shape) }

/// Raw bits of every element, so NaN payloads and the sign of zero are compared too.
public func bits(_ t: Tensor) -> [UInt64] {
    t.withUnsafeBytes { raw in
        switch t.dtype.byteSize {
        case 8: return raw.bindMemory(to: UInt64.self).map { $0 }
        case 4: return raw.bindMemory(to: UInt32.self).map { UInt64($0) }
        case 1: return raw.bindMemory(to: UInt8.self).map { UInt64($0) }
        default: return []
        }
    }
}
