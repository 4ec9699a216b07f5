# Remove the totem-agent Windows service. Run in an elevated PowerShell:
#
#   powershell -ExecutionPolicy Bypass -File .\uninstall.ps1 [-Purge]
#
# Keeps %ProgramData%\totem-agent (config, buffer, logs) unless -Purge.
# Idempotent: running it again on a removed install changes nothing.
[CmdletBinding()]
param(
    [switch]$Purge
)
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal(
    [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Error 'uninstall.ps1 must run as Administrator: right-click PowerShell, "Run as administrator".'
    exit 1
}

$target = Join-Path $env:ProgramFiles 'totem-agent'
$exe = Join-Path $target 'totem-agent.exe'
if (Test-Path -LiteralPath $exe) {
    $arguments = @('service', 'uninstall')
    if ($Purge) { $arguments += '--purge' }
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) {
        Write-Error "totem-agent service uninstall failed (exit code $LASTEXITCODE)"
        exit $LASTEXITCODE
    }
}
Remove-ItemProperty -Path 'HKLM:\Software\Microsoft\Windows\CurrentVersion\Run' `
    -Name 'totem-agent-tray' -ErrorAction SilentlyContinue
if (Test-Path -LiteralPath $target) {
    Remove-Item -LiteralPath $target -Recurse -Force
}
if ($Purge) {
    $data = Join-Path $env:ProgramData 'totem-agent'
    if (Test-Path -LiteralPath $data) { Remove-Item -LiteralPath $data -Recurse -Force }
    Write-Output 'totem-agent removed, with its config, buffer and logs.'
} else {
    Write-Output 'totem-agent removed; kept %ProgramData%\totem-agent (config, buffer, logs). -Purge removes it.'
}
