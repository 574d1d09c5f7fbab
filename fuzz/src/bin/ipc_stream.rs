fn main() {
    fuseflow_fuzz::run(fuseflow_fuzz::targets::ipc_stream)
}
