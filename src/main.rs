//! The `register_new_matrix_user` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    rnmu::main()
}
