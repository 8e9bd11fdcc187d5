# Guest program for the KVM probe (probe.ts embeds the assembled bytes).
#
# Why not just see whether SeaBIOS runs: on nested-virtualisation hosts KVM
# can run firmware yet be so slow at first-touch memory (EPT faults handled by
# the outer hypervisor) that a Linux kernel never finishes decompressing. So
# the probe does what a booting kernel does first - enter long mode with
# paging, touch 64 MiB of fresh memory, run a busy loop - and then exits QEMU
# through isa-debug-exit (port 0xf4, value 0x10 -> QEMU exit status 33).
# Healthy KVM finishes in well under a second; the probe's caller gives it a
# few seconds.
#
# Format: a flat multiboot (v1) image with the a.out kludge (flags bit 16), so
# `qemu-system-x86_64 -kernel` loads it at 1 MiB and enters in 32-bit
# protected mode without paging.
#
# Rebuild (the unit test checks probe.ts against this):
#   as --64 -o p.o kvm-probe.S && ld -m elf_x86_64 -Ttext=0x100000 --oformat binary -e _start -o p.bin p.o
        .code32
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0x00010000
        .set PML4, 0x70000
        .set PDPT, 0x71000
        .set PD, 0x72000
        .text
        .globl _start
_start:
header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
        .long header            # header_addr
        .long header            # load_addr
        .long 0                 # load_end_addr: whole file
        .long 0                 # bss_end_addr: none
        .long entry             # entry_addr
entry:
        cli
        # Page tables: identity-map the first 1 GiB with 2 MiB pages.
        mov $PML4, %edi
        xor %eax, %eax
        mov $3072, %ecx
        rep stosl
        movl $(PDPT + 3), PML4
        movl $(PD + 3), PDPT
        mov $PD, %edi
        mov $0x83, %eax         # present | writable | 2 MiB page
        mov $512, %ecx
1:      mov %eax, (%edi)
        add $0x200000, %eax
        add $8, %edi
        loop 1b
        mov $PML4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax          # PAE
        mov %eax, %cr4
        mov $0xC0000080, %ecx   # EFER
        rdmsr
        or $0x100, %eax         # LME
        wrmsr
        mov %cr0, %eax
        or $0x80000001, %eax    # PG | PE
        mov %eax, %cr0
        lgdt gdtr
        ljmp $0x08, $long_mode
        .code64
long_mode:
        # Touch every 4 KiB page from 2 MiB to 66 MiB.
        mov $0x200000, %rdi
2:      movq %rdi, (%rdi)
        add $4096, %rdi
        cmp $0x4200000, %rdi
        jb 2b
        # 100 million iterations of a dependent ALU loop.
        mov $100000000, %rcx
        xor %rax, %rax
3:      add %rcx, %rax
        dec %rcx
        jnz 3b
        mov $0x10, %al
        out %al, $0xf4          # isa-debug-exit: QEMU exits with (0x10 << 1) | 1
4:      hlt
        jmp 4b
        .balign 8
gdt:
        .quad 0
        .quad 0x00209A0000000000  # 64-bit code segment
        .quad 0x0000920000000000  # data segment
gdtr:
        .word gdtr - gdt - 1
        .long gdt
