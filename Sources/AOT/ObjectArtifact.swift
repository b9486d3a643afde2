import KilnCPU
import KilnIR

/// `NAME.o`: the kernels, the entry and the constants as `ObjectEmitter` writes them, with the
/// artifact ABI's four functions as glue (LLVM IR text, below). Only `NAME_run`,
/// `NAME_run_with_arena`, `NAME_set_threads` and `NAME_last_error` are global symbols; the
/// runtime functions it calls are `NAME_kiln_*`, defined by `NAME_runtime.a`.
enum ObjectArtifact {
    /// The runtime functions that run work on the worker pool: an object calling one of them
    /// has a pool whose size `NAME_set_threads` sets (the artifact runtime's products, Kiln's
    /// own for float32 and float64, split across it too).
    static let poolFunctions: Set<String> = ["kiln_parallel_for", "kiln_sgemm", "kiln_hgemm", "kiln_blas_sgemm", "kiln_blas_dgemm"]

    /// The artifact's object file for `layout.spec.target` and whether it calls the C runtime.
    static func write(_ layout: ArtifactLayout) throws -> (bytes: [UInt8], callsRuntime: Bool) {
        let name = layout.spec.name
        let exported: Set<String> = [name + "_run", name + "_run_with_arena", name + "_set_threads", name + "_last_error"]
        let names = ObjectEmitter.Names(module: name, entry: layout.entryName, constantTable: name + "_constants",
                                        runtimePrefix: layout.runtimePrefix, exported: exported)
        let sizeBits = try layout.spec.target.pointerBits
        // A 32-bit target cannot address an arena (or constants) past its size_t.
        if sizeBits < 64, layout.arenaBytes + 63 >= 1 << sizeBits || layout.constantBytes >= 1 << sizeBits {
            throw KilnError.resourceExhausted("the arena of \(layout.arenaBytes) bytes and constants of \(layout.constantBytes) bytes of '\(name)' do not fit the \(sizeBits)-bit address space of \(layout.spec.target.triple)")
        }
        let object = try ObjectEmitter.emit(layout.spec.function, plan: layout.plan, target: layout.spec.target,
                                            description: layout.description, names: names) { calls in
            glue(layout, sizeType: "i\(sizeBits)", usesPool: !calls.isDisjoint(with: poolFunctions))
        }
        return (object.bytes, !object.runtimeCalls.isEmpty)
    }

    /// The artifact ABI's functions as LLVM IR: runs on a caller's arena or the artifact's own,
    /// the pool size, and the calling thread's last error. `sizeType` is the target's size_t.
    static func glue(_ layout: ArtifactLayout, sizeType s: String, usesPool: Bool) -> String {
        let n = layout.spec.name
        let constants = layout.plan.constants.count + 1
        // NAME_run's own arena: aligned_alloc wants a multiple of the alignment.
        let arenaAllocation = max(64, (layout.arenaBytes + 63) / 64 * 64)
        let allocationMessage = Array("cannot allocate the arena of \(arenaAllocation) bytes".utf8)
        var ir = """
        ; The artifact ABI of \(n) (kiln compile). Runtime functions are named kiln_*; the object
        ; writer renames every one to \(layout.runtimePrefix)kiln_*.

        ; The calling thread's last run: code (0, 3, 8), then the failed check's site, position, value.
        %\(n).error = type { i32, i64, i64, i64 }
        @\(n)_last = internal thread_local global %\(n).error zeroinitializer, align 8
        ; NAME_run's arena, allocated at first use and kept; busy while a NAME_run uses it.
        @\(n)_busy = internal global i32 0, align 4
        @\(n)_arena = internal global ptr null, align 8
        @\(n)_constants = external constant [\(constants) x ptr]
        @\(n)_allocation_message = private unnamed_addr constant [\(allocationMessage.count) x i8] c"\(irString(allocationMessage))", align 1

        declare void @\(layout.entryName)(ptr, ptr, ptr, ptr)
        declare ptr @aligned_alloc(\(s), \(s))
        declare void @free(ptr)
        declare void @llvm.memset.p0.\(s)(ptr, i8, \(s), i1)
        declare void @llvm.memcpy.p0.p0.\(s)(ptr, ptr, \(s), i1)

        define internal void @\(n)_set_last(i32 %code, i64 %site, i64 %position, i64 %value) nounwind {
        entry:
          %code.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 0
          store i32 %code, ptr %code.p, align 8
          %site.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 1
          store i64 %site, ptr %site.p, align 8
          %position.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 2
          store i64 %position, ptr %position.p, align 8
          %value.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 3
          store i64 %value, ptr %value.p, align 8
          ret void
        }

        ; text[0, length) into out, truncated to size - 1 bytes, NUL-terminated (size > 0).
        define internal void @\(n)_copy_message(ptr %out, \(s) %size, ptr %text, \(s) %length) nounwind {
        entry:
          %limit = sub \(s) %size, 1
          %fits = icmp ult \(s) %length, %limit
          %count = select i1 %fits, \(s) %length, \(s) %limit
          call void @llvm.memcpy.p0.p0.\(s)(ptr %out, ptr %text, \(s) %count, i1 false)
          %end = getelementptr inbounds i8, ptr %out, \(s) %count
          store i8 0, ptr %end, align 1
          ret void
        }


        """
        ir += runWithArena(layout, sizeType: s)
        ir += """

        define signext i32 @\(n)_run(ptr %feeds, ptr %fetches) nounwind {
        entry:
          %claim = cmpxchg ptr @\(n)_busy, i32 0, i32 1 acquire monotonic, align 4
          %mine = extractvalue { i32, i1 } %claim, 1
          br i1 %mine, label %owned, label %temporary
        owned:
          %kept = load ptr, ptr @\(n)_arena, align 8
          %none = icmp eq ptr %kept, null
          br i1 %none, label %allocate, label %run.owned
        allocate:
          %fresh = call ptr @aligned_alloc(\(s) 64, \(s) \(arenaAllocation))
          %fresh.failed = icmp eq ptr %fresh, null
          br i1 %fresh.failed, label %owned.failed, label %keep
        keep:
          store ptr %fresh, ptr @\(n)_arena, align 8
          br label %run.owned
        run.owned:
          %arena = phi ptr [ %kept, %owned ], [ %fresh, %keep ]
          %code = call signext i32 @\(n)_run_with_arena(ptr %feeds, ptr %fetches, ptr %arena)
          store atomic i32 0, ptr @\(n)_busy release, align 4
          ret i32 %code
        owned.failed:
          store atomic i32 0, ptr @\(n)_busy release, align 4
          call void @\(n)_set_last(i32 8, i64 0, i64 0, i64 0)
          ret i32 8
        temporary:
          ; Another thread is inside \(n)_run: this call gets an arena of its own.
          %scratch = call ptr @aligned_alloc(\(s) 64, \(s) \(arenaAllocation))
          %scratch.failed = icmp eq ptr %scratch, null
          br i1 %scratch.failed, label %temporary.failed, label %run.temporary
        run.temporary:
          %code.temporary = call signext i32 @\(n)_run_with_arena(ptr %feeds, ptr %fetches, ptr %scratch)
          call void @free(ptr %scratch)
          ret i32 %code.temporary
        temporary.failed:
          call void @\(n)_set_last(i32 8, i64 0, i64 0, i64 0)
          ret i32 8
        }


        """
        if usesPool {
            ir += """
            declare signext i32 @kiln_pool_configure(i32 signext)

            define signext i32 @\(n)_set_threads(i32 signext %threads) nounwind {
            entry:
              %size = call signext i32 @kiln_pool_configure(i32 signext %threads)
              ret i32 %size
            }


            """
        } else {
            ir += """
            ; Nothing here runs on a worker pool: every run uses the calling thread alone.
            define signext i32 @\(n)_set_threads(i32 signext %threads) nounwind {
            entry:
              ret i32 1
            }


            """
        }
        ir += lastError(layout, sizeType: s, allocationMessageLength: allocationMessage.count)
        return ir
    }

    /// NAME_run_with_arena: clears the fault record, runs the entry, and turns a recorded fault
    /// into the thread's last error (code 3, TensorFlow's INVALID_ARGUMENT).
    static func runWithArena(_ layout: ArtifactLayout, sizeType s: String) -> String {
        let n = layout.spec.name
        guard let offset = layout.faultRecordOffset else {
            return """
            define signext i32 @\(n)_run_with_arena(ptr %feeds, ptr %fetches, ptr %arena) nounwind {
            entry:
              call void @\(layout.entryName)(ptr %feeds, ptr %fetches, ptr %arena, ptr @\(n)_constants)
              call void @\(n)_set_last(i32 0, i64 0, i64 0, i64 0)
              ret i32 0
            }

            """
        }
        return """
        define signext i32 @\(n)_run_with_arena(ptr %feeds, ptr %fetches, ptr %arena) nounwind {
        entry:
          ; kiln_fault: int64 site, position, value; int32 lock; 32 bytes.
          %record = getelementptr inbounds i8, ptr %arena, i64 \(offset)
          call void @llvm.memset.p0.\(s)(ptr align 8 %record, i8 0, \(s) 32, i1 false)
          call void @\(layout.entryName)(ptr %feeds, ptr %fetches, ptr %arena, ptr @\(n)_constants)
          %site = load i64, ptr %record, align 8
          %failed = icmp ne i64 %site, 0
          br i1 %failed, label %fault, label %done
        fault:
          %position.p = getelementptr inbounds i8, ptr %record, i64 8
          %position = load i64, ptr %position.p, align 8
          %value.p = getelementptr inbounds i8, ptr %record, i64 16
          %value = load i64, ptr %value.p, align 8
          call void @\(n)_set_last(i32 3, i64 %site, i64 %position, i64 %value)
          ret i32 3
        done:
          call void @\(n)_set_last(i32 0, i64 0, i64 0, i64 0)
          ret i32 0
        }

        """
    }

    /// NAME_last_error: the code of the thread's last run and its message (the failed check's
    /// text formatted by `kiln_fault_message` as `Check.error` words it, or the allocation failure).
    static func lastError(_ layout: ArtifactLayout, sizeType s: String, allocationMessageLength: Int) -> String {
        let n = layout.spec.name
        var ir = ""
        var checkCase = ""
        var checkBlocks = ""
        if !layout.checks.isEmpty {
            let k = layout.checks.count
            var messages: [String] = [], ranks: [String] = [], shapes: [String] = []
            for (i, check) in layout.checks.enumerated() {
                let text = Array(check.message.utf8) + [0]
                ir += "@\(n)_check_message_\(i) = private unnamed_addr constant [\(text.count) x i8] c\"\(irString(text))\", align 1\n"
                messages.append("ptr @\(n)_check_message_\(i)")
                ranks.append("i64 \(check.shape.count)")
                if check.shape.isEmpty {
                    shapes.append("ptr null")
                } else {
                    ir += "@\(n)_check_shape_\(i) = private unnamed_addr constant [\(check.shape.count) x i64] [\(check.shape.map { "i64 \($0)" }.joined(separator: ", "))], align 8\n"
                    shapes.append("ptr @\(n)_check_shape_\(i)")
                }
            }
            ir += """
            @\(n)_check_messages = private unnamed_addr constant [\(k) x ptr] [\(messages.joined(separator: ", "))], align 8
            @\(n)_check_ranks = private unnamed_addr constant [\(k) x i64] [\(ranks.joined(separator: ", "))], align 8
            @\(n)_check_shapes = private unnamed_addr constant [\(k) x ptr] [\(shapes.joined(separator: ", "))], align 8
            declare void @kiln_fault_message(ptr, i64, ptr, i64, i64, ptr, \(s))

            """
            checkCase = "i32 3, label %check\n    "
            checkBlocks = """
            check:
              %site.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 1
              %site = load i64, ptr %site.p, align 8
              %index = sub i64 %site, 1
              %known = icmp ult i64 %index, \(k)
              br i1 %known, label %format, label %empty
            format:
              %template.p = getelementptr inbounds [\(k) x ptr], ptr @\(n)_check_messages, i64 0, i64 %index
              %template = load ptr, ptr %template.p, align 8
              %rank.p = getelementptr inbounds [\(k) x i64], ptr @\(n)_check_ranks, i64 0, i64 %index
              %rank = load i64, ptr %rank.p, align 8
              %shape.p = getelementptr inbounds [\(k) x ptr], ptr @\(n)_check_shapes, i64 0, i64 %index
              %shape = load ptr, ptr %shape.p, align 8
              %position.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 2
              %position = load i64, ptr %position.p, align 8
              %value.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 3
              %value = load i64, ptr %value.p, align 8
              call void @kiln_fault_message(ptr %template, i64 %rank, ptr %shape, i64 %position, i64 %value, ptr %message, \(s) %size)
              br label %done

            """
        }
        ir += """
        define signext i32 @\(n)_last_error(ptr %message, \(s) %size) nounwind {
        entry:
          %code.p = getelementptr inbounds %\(n).error, ptr @\(n)_last, i32 0, i32 0
          %code = load i32, ptr %code.p, align 8
          %given = icmp ne ptr %message, null
          %room = icmp ne \(s) %size, 0
          %write = and i1 %given, %room
          br i1 %write, label %describe, label %done
        describe:
          switch i32 %code, label %empty [
            \(checkCase)i32 8, label %allocation
          ]
        empty:
          store i8 0, ptr %message, align 1
          br label %done
        allocation:
          call void @\(n)_copy_message(ptr %message, \(s) %size, ptr @\(n)_allocation_message, \(s) \(allocationMessageLength))
          br label %done
        \(checkBlocks)done:
          ret i32 %code
        }

        """
        return ir
    }

    /// Bytes as the inside of an LLVM IR `c"..."` string: printable ASCII as is, the rest (and
    /// `"` and `\`) as `\XX`.
    static func irString(_ bytes: [UInt8]) -> String {
        var out = ""
        for b in bytes {
            if b >= 0x20, b < 0x7f, b != UInt8(ascii: "\""), b != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "\\" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
