import Foundation
import KilnCPU
import KilnIR
import KilnTestSupport
import XCTest
@testable import KilnAOT

/// NAME.h: plain C that C and C++ compile cleanly, macros holding each feed's and fetch's facts,
/// and a comment block with the signature, memory figures, target and link line.
final class HeaderMacroTests: XCTestCase {
    /// Two feeds (one a scalar, one with a scope in its name) and three fetches of other dtypes.
    let text = """
    func @h(%0: f32[2,3] feed "scope/x", %1: i32[] feed "n") {
      %2 = cast %0 to=f64
      %3 = reduce.sum %2 axes=[1]
      %4 = constant f32[] 0.0
      %5 = broadcast %4 shape=[2,3] dims=[]
      %6 = gt %0, %5
      %7 = cast %1 to=i64
      return %3, %6, %7
    }
    """

    func layout(_ emit: ArtifactEmit, name: String = "tiny_net") throws -> ArtifactLayout {
        try ArtifactLayout(spec: CArtifactHarness.spec(text, name: name), emit: emit, description: CArtifact.description)
    }

    func testHeaderCompilesAsStrictCAndAsCxxAndIncludesTwice() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
        let dir = try CArtifactHarness.directory(self)
        for (emit, library) in [(ArtifactEmit.object, "tiny_net_runtime.a" as String?), (.object, nil), (.c, nil)] {
            let header = ArtifactHeader.source(try layout(emit), library: library)
            try header.write(toFile: "\(dir)/tiny_net.h", atomically: true, encoding: .utf8)
            try "#include \"tiny_net.h\"\n#include \"tiny_net.h\"\nint main(void) { int (*p)(const void *const *, void *const *) = tiny_net_run; (void)p; return 0; }\n"
                .write(toFile: "\(dir)/twice.c", atomically: true, encoding: .utf8)
            try ToolRunner.succeed(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-x", "c", "tiny_net.h"], in: dir)
            try ToolRunner.succeed(["cc", "-std=c99", "-Wall", "-Werror", "-fsyntax-only", "twice.c"], in: dir)
            if ToolRunner.find("g++") != nil {
                try ToolRunner.succeed(["g++", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++", "tiny_net.h"], in: dir)
                // C++ sees the prototypes with C linkage: the symbol is the plain C name.
                try "#include \"tiny_net.h\"\nint (*p)(const void *const *, void *const *) = tiny_net_run;\n"
                    .write(toFile: "\(dir)/linkage.cc", atomically: true, encoding: .utf8)
                try ToolRunner.succeed(["g++", "-c", "linkage.cc", "-o", "linkage.o"], in: dir)
                let symbols = try ToolRunner.succeed(["nm", "-u", "linkage.o"], in: dir)
                XCTAssertTrue(symbols.split(separator: "\n").contains { $0.hasSuffix(" tiny_net_run") }, symbols)
            } else {
                print("HeaderMacroTests: g++ is missing, the header was not compiled as C++ (apt-get install g++)")
            }
        }
    }

    /// A C program prints every macro; the values are the layout's.
    func testMacrosHoldEachFeedAndFetchsFacts() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
        let dir = try CArtifactHarness.directory(self)
        let l = try layout(.c)
        try ArtifactHeader.source(l, library: nil).write(toFile: "\(dir)/tiny_net.h", atomically: true, encoding: .utf8)
        try """
            #include <stdio.h>
            #include "tiny_net.h"
            int main(void) {
                long long s0[] = TINY_NET_FEED0_SHAPE, s1[] = TINY_NET_FEED1_SHAPE, t2[] = TINY_NET_FETCH1_SHAPE;
                printf("%d %d %lld %d %d %d %d %d\\n", TINY_NET_FEED_COUNT, TINY_NET_FETCH_COUNT, (long long)TINY_NET_ARENA_BYTES,
                       TINY_NET_ARENA_ALIGNMENT, TINY_NET_OK, TINY_NET_ERROR_INVALID_ARGUMENT, TINY_NET_ERROR_RESOURCE_EXHAUSTED,
                       (int)TINY_NET_CONSTANT_BYTES);
                printf("%s %d %d %lld %lld %d %d %d %d %d\\n", TINY_NET_FEED0_NAME, TINY_NET_FEED0_DTYPE, TINY_NET_FEED0_RANK, s0[0], s0[1],
                       TINY_NET_FEED0_DIM0, TINY_NET_FEED0_DIM1, TINY_NET_FEED0_ELEMENTS, TINY_NET_FEED0_BYTES, TINY_NET_FEED_scope_x);
                printf("%s %d %d %lld %d %d %d\\n", TINY_NET_FEED1_NAME, TINY_NET_FEED1_DTYPE, TINY_NET_FEED1_RANK, s1[0],
                       TINY_NET_FEED1_ELEMENTS, TINY_NET_FEED1_BYTES, TINY_NET_FEED_n);
                printf("%s %d %d %d %d %d\\n", TINY_NET_FETCH0_NAME, TINY_NET_FETCH0_DTYPE, TINY_NET_FETCH0_DIM0, TINY_NET_FETCH0_ELEMENTS,
                       TINY_NET_FETCH0_BYTES, TINY_NET_FETCH_out0);
                printf("%s %d %lld %lld %d %d\\n", TINY_NET_FETCH1_NAME, TINY_NET_FETCH1_DTYPE, t2[0], t2[1], TINY_NET_FETCH1_BYTES,
                       TINY_NET_FETCH_out1);
                printf("%s %d %d %d\\n", TINY_NET_FETCH2_NAME, TINY_NET_FETCH2_DTYPE, TINY_NET_FETCH2_BYTES, TINY_NET_FETCH_out2);
                return 0;
            }
            """.write(toFile: "\(dir)/macros.c", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["cc", "-std=c99", "-Wall", "-Werror", "-o", "macros", "macros.c"], in: dir)
        let printed = try ToolRunner.succeed(["./macros"], in: dir)
        XCTAssertEqual(printed, """
            2 3 \(l.arenaBytes) 64 0 3 8 \(l.constantBytes)
            scope/x:0 1 2 2 3 2 3 6 24 0
            n:0 3 0 0 1 4 1
            out0:0 2 2 2 16 0
            out1:0 10 2 3 6 1
            out2:0 9 8 2

            """)
    }

    func testCommentBlockGivesSignatureMemoryTargetOriginAndLinkLine() throws {
        let object = ArtifactHeader.source(try layout(.object), library: "tiny_net_runtime.a")
        for line in [" *     [0] scope/x:0  float32[2,3]  24 bytes  (scope_x)",
                     " *     [1] n:0        int32[]       4 bytes  (n)",
                     " *     [1] out1:0  bool[2,3]   6 bytes  (out1)",
                     " *   cc main.c tiny_net.o tiny_net_runtime.a -lm -lpthread",
                     " * Target: \(CPUTarget.host.triple), CPU \(CPUTarget.host.name)",
                     " * Origin: test IR @h"] {
            XCTAssertTrue(object.contains(line + "\n"), "missing \(line) in\n\(object)")
        }
        XCTAssertTrue(object.contains(" *   arena      \(try layout(.object).arenaBytes) bytes"), object)
        XCTAssertTrue(object.contains(" *   constants  \(try layout(.object).constantBytes) bytes"), object)
        XCTAssertTrue(ArtifactHeader.source(try layout(.object), library: nil).contains(" *   cc main.c tiny_net.o -lm -lpthread\n"))
        XCTAssertTrue(ArtifactHeader.source(try layout(.c), library: nil).contains(" *   cc -O2 -std=c99 main.c tiny_net.c -lm\n"))
    }

    /// Names that would break the header (a comment's end, quotes, a trigraph, non-ASCII) are
    /// spelled safely; a feed whose identifier is COUNT gets no index macro rather than a clash.
    func testHostileNamesStaySafeC() throws {
        try XCTSkipUnless(ToolRunner.find("cc") != nil, "needs a C compiler: apt-get install gcc")
        var spec = try CArtifactHarness.spec(text, name: "odd")
        spec.feeds[0].name = "a*/b\"c\\d??/é:0"
        spec.feeds[1].identifier = "COUNT"
        spec.origin = "evil */ origin\nnext line"
        let l = try ArtifactLayout(spec: spec, emit: .c, description: CArtifact.description)
        let dir = try CArtifactHarness.directory(self)
        try ArtifactHeader.source(l, library: nil).write(toFile: "\(dir)/odd.h", atomically: true, encoding: .utf8)
        try """
            #include <stdio.h>
            #include "odd.h"
            int main(void) { printf("%s|%d|%d\\n", ODD_FEED0_NAME, ODD_FEED_COUNT, ODD_FEED_scope_x); return 0; }
            """.write(toFile: "\(dir)/odd.c", atomically: true, encoding: .utf8)
        try ToolRunner.succeed(["cc", "-std=c99", "-Wall", "-Werror", "-o", "odd", "odd.c"], in: dir)
        XCTAssertEqual(try ToolRunner.succeed(["./odd"], in: dir), "a*/b\"c\\d??/é:0|2|0\n")
    }
}
