import CLLVM
import LLVMKit

/// `copy_into(dst: state, src)`: the functional write-back ExecuTorch exports after an `index_put`
/// on a KV cache. When the index_put ran in place the source already is the state's buffer and the
/// kernel returns at once (checked per call, by pointer: if the index_put fell back to the reference
/// its result is a fresh tensor and is copied). Elements move as integers of their byte size.
/// Work items: elements. buffers: [dst (not read), src, out (= dst's buffer)].
public enum StateCopyKernels {
    public static func copyInto(byteSize: Int, lanes: Int) -> KernelDefinition {
        let width = max(1, lanes * 4 / byteSize)
        return KernelDefinition(name: "copy_into_state_b\(byteSize * 8)_v\(width)") { e in
            let b = e.b
            let element = ElementType.bits(byteSize).storage(b)
            let src = e.buffer(1), out = e.buffer(2)
            Support.ifThen(b, b.icmp(LLVMIntNE, src, out), "copy") {
                Support.vectorLoop(b, e.begin, e.end, width: width, "e") { l, i in
                    l.store(l.load(element, src, i), element, out, i)
                }
            }
        }
    }
}
