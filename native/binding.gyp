{
  "targets": [
    {
      "target_name": "minivisor",
      "sources": [
        "src/addon.cc",
        "src/machine.cc",
        "src/machine_pool.cc",
        "src/budget.cc",
        "src/trapped_insn.cc",
        "src/mem_operand.cc",
        "src/guest_ram.cc",
        "src/deliver.cc",
        "src/guest_stub.cc",
        "src/abort_guard.cc",
        "src/stop_signal_cleanup.cc",
        "src/code_bits.cc",
        "src/spin_loop.cc",
        "src/content_watch.cc",
        "src/content_watch_fill.cc",
        "src/digest.cc",
        "src/other_arches.cc",
        "src/run_watchdog.cc",
        "src/exception_in_flight.cc",
        "src/populate_alloc.cc",
        "src/mapped_file.cc",
        "src/trace_encoding.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!(node ../scripts/unicorn.mjs include)"
      ],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["<!@(node ../scripts/unicorn.mjs libs)"],
      "conditions": [
        ["OS=='linux'", { "ldflags": ["-Wl,--wrap=posix_memalign"] }]
      ]
    }
  ]
}
