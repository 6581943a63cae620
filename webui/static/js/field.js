/* The particle field: faint cyan points drifting in the dark, linked by thin lines when they pass close, and
   drawn towards the cursor. Purely decorative (the canvas is aria-hidden) and entirely optional: every page
   reads the same without it. Under prefers-reduced-motion nothing is drawn at all. */
(function () {
  "use strict";
  var canvas = document.getElementById("particles");
  if (!canvas || !canvas.getContext) return;
  var ctx = canvas.getContext("2d");
  var motion = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;
  var LINK = 120, CURSOR = 170, particles = [], width = 0, height = 0, ratio = 1, frame = 0, running = false;
  var cursor = { x: -1e4, y: -1e4 };

  function reduced() { return motion !== null && motion.matches; }

  function resize() {
    ratio = Math.min(window.devicePixelRatio || 1, 2);
    width = window.innerWidth; height = window.innerHeight;
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    var wanted = Math.min(110, Math.round((width * height) / 15000));
    while (particles.length < wanted) particles.push(spawn());
    particles.length = wanted;
  }

  function spawn() {
    var speed = 0.06 + Math.random() * 0.16, angle = Math.random() * Math.PI * 2;
    return { x: Math.random() * width, y: Math.random() * height, vx: Math.cos(angle) * speed,
             vy: Math.sin(angle) * speed, r: 0.6 + Math.random() * 1.3, a: 0.25 + Math.random() * 0.5 };
  }

  function step() {
    ctx.clearRect(0, 0, width, height);
    for (var i = 0; i < particles.length; i++) {
      var p = particles[i];
      var dx = cursor.x - p.x, dy = cursor.y - p.y, d = Math.sqrt(dx * dx + dy * dy);
      if (d < CURSOR && d > 1) { p.x += dx / d * 0.22; p.y += dy / d * 0.22; }
      p.x += p.vx; p.y += p.vy;
      if (p.x < -10) p.x = width + 10; else if (p.x > width + 10) p.x = -10;
      if (p.y < -10) p.y = height + 10; else if (p.y > height + 10) p.y = -10;
    }
    ctx.lineWidth = 0.6;
    for (var j = 0; j < particles.length; j++) {
      var a = particles[j];
      for (var k = j + 1; k < particles.length; k++) {
        var b = particles[k], lx = a.x - b.x, ly = a.y - b.y, dist = lx * lx + ly * ly;
        if (dist < LINK * LINK) {
          ctx.strokeStyle = "rgba(0,255,213," + (0.11 * (1 - Math.sqrt(dist) / LINK)).toFixed(3) + ")";
          ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
        }
      }
      var cx = cursor.x - a.x, cy = cursor.y - a.y, cd = Math.sqrt(cx * cx + cy * cy);
      if (cd < CURSOR) {
        ctx.strokeStyle = "rgba(0,255,213," + (0.28 * (1 - cd / CURSOR)).toFixed(3) + ")";
        ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(cursor.x, cursor.y); ctx.stroke();
      }
      ctx.fillStyle = "rgba(0,255,213," + a.a.toFixed(2) + ")";
      ctx.beginPath(); ctx.arc(a.x, a.y, a.r, 0, Math.PI * 2); ctx.fill();
    }
    frame = window.requestAnimationFrame(step);
  }

  function start() {
    if (running || reduced() || document.hidden) return;
    running = true; resize(); frame = window.requestAnimationFrame(step);
  }
  function stop() {
    running = false; window.cancelAnimationFrame(frame); ctx.clearRect(0, 0, width, height);
  }

  window.addEventListener("resize", function () { if (running) resize(); });
  window.addEventListener("pointermove", function (e) { cursor.x = e.clientX; cursor.y = e.clientY; }, { passive: true });
  document.addEventListener("pointerleave", function () { cursor.x = cursor.y = -1e4; });
  document.addEventListener("visibilitychange", function () { if (document.hidden) stop(); else start(); });
  if (motion && motion.addEventListener) motion.addEventListener("change", function () { if (reduced()) stop(); else start(); });
  start();
})();
