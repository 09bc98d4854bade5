{
  "targets": [
    {
      "target_name": "forkd",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/got_patch.cc",
        "native/dontfork.cc",
        "native/mmap_layout.cc",
        "native/heap_sweep.cc",
        "native/platform_park.cc",
        "native/child_platform.cc",
        "native/fork.cc",
        "native/write_all.cc",
        "native/exit.cc",
        "native/wait.cc",
        "native/signals.cc",
        "native/term_watchdog.cc",
        "native/process.cc",
        "native/exec.cc",
        "native/job_pipe.cc",
        "native/claim.cc",
        "native/lock.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-Wl,-z,now"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources": [] }]
      ]
    }
  ]
}
