import XCTest
import CKilnRT
import KilnIR
import KilnKernels
@testable import KilnC

/// Hand-written kernels through the `KernelRenderer` interface, compiled by the system C compiler
/// and run on host buffers: the renderer's semantics checked without the kernel writer.
typealias CKernel = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

/// Input, output and constant tables and an arena, each buffer 64-byte aligned and zeroed.
final class KernelBuffers {
    var inputs: [UnsafeMutableRawPointer?] = []
    var outputs: [UnsafeMutableRawPointer?] = []
    var inputBytes: [Int] = []
    var outputBytes: [Int] = []
    var constants: [UnsafeMutableRawPointer?] = []
    let arena: UnsafeMutableRawPointer
    private var owned: [UnsafeMutableRawPointer] = []

    init(arenaBytes: Int = 4096) {
        arena = .allocate(byteCount: arenaBytes, alignment: 64)
        arena.initializeMemory(as: UInt8.self, repeating: 0, count: arenaBytes)
        owned.append(arena)
    }

    deinit { owned.forEach { $0.deallocate() } }

    private func buffer<T>(_ values: [T]) -> UnsafeMutableRawPointer {
        let bytes = max(values.count * MemoryLayout<T>.stride, 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        values.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        owned.append(p)
        return p
    }

    func input<T>(_ values: [T]) {
        inputs.append(buffer(values))
        inputBytes.append(values.count * MemoryLayout<T>.stride)
    }
    func output<T>(_ type: T.Type, count: Int) {
        outputs.append(buffer([UInt8](repeating: 0, count: count * MemoryLayout<T>.stride)))
        outputBytes.append(count * MemoryLayout<T>.stride)
    }
    func constant<T>(_ values: [T]) { constants.append(buffer(values)) }

    func read<T>(output k: Int, _ type: T.Type, count: Int) -> [T] {
        Array(UnsafeBufferPointer(start: outputs[k]!.assumingMemoryBound(to: T.self), count: count))
    }

    func run(_ kernel: CKernel) {
        inputs.withUnsafeMutableBufferPointer { i in
            outputs.withUnsafeMutableBufferPointer { o in
                constants.withUnsafeMutableBufferPointer { c in
                    kernel(UnsafeMutableRawPointer(i.baseAddress), UnsafeMutableRawPointer(o.baseAddress), arena, UnsafeMutableRawPointer(c.baseAddress))
                }
            }
        }
    }
}

extension XCTestCase {
    /// `r`'s source compiled and loaded, its runtime table bound.
    func load(_ r: CStyleRenderer) throws -> SharedObject {
        kiln_pool_start(2)
        let so = try CCompiler().load(source: r.source)
        let bind = unsafeBitCast(try so.symbol("kiln_bind"), to: (@convention(c) (UnsafeRawPointer?) -> Void).self)
        bind(UnsafeRawPointer(kiln_runtime_functions()))
        return so
    }

    func kernel(_ so: SharedObject, _ name: String) throws -> CKernel {
        unsafeBitCast(try so.symbol(name), to: CKernel.self)
    }

    /// Runs function `name` of `r` on `buffers`: C99 compiled by cc and called here, OpenCL C
    /// built for the first OpenCL device and run as one work item.
    func execute(_ r: CStyleRenderer, _ name: String, _ buffers: KernelBuffers) throws {
        if r.dialect == .openCL {
            try OpenCLRunner().run(r.source, kernel: name, buffers)
        } else {
            let so = try load(r)
            buffers.run(try kernel(so, name))
        }
    }
}

/// Renders the function a test calls: exported in C99, a kernel in OpenCL C.
func renderTestFunction(_ r: CStyleRenderer, _ name: String, _ body: (CStyleRenderer) -> Void) {
    let openCL = r.dialect == .openCL
    renderFunction(r, name, kernel: openCL, exported: !openCL, body)
}

/// Renders one exported function `name` whose body `body` writes against `r`.
func renderFunction(_ r: CStyleRenderer, _ name: String, ranged: Bool = false, kernel: Bool = false, exported: Bool = true,
                    _ body: (CStyleRenderer) -> Void) {
    r.beginFunction(RFunction(name: name, ranged: ranged), exported: exported, kernel: kernel)
    body(r)
    r.endFunction()
}
